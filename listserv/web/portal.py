"""What the portal's own routes share: pages with the visitor, the CSRF token and the
portal's words; checked forms; roles; the address the portal is seen at.

``Portal.form`` is the one way a route reads a POST: a form without a valid CSRF token gets
403 and changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from listserv.app import App
from listserv.store.lists import MailList, UnknownList, get_list
from listserv.web.csrf import FormTooLarge, csrf_token, read_form, valid_csrf
from listserv.web.pages import Pages, choose_language
from listserv.web.sessions import current_address

WORDS = "portal_words.html"


@dataclass
class Portal:
    app: App
    pages: Pages
    secret: bytes

    def words(self, request: Request) -> Any:
        return self.pages.template(choose_language(request), WORDS).module

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        response = self.pages.page(
            request,
            name,
            status=status,
            p=self.words(request),
            csrf=csrf_token(request, self.secret),
            visitor=current_address(request),
            **context,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def message(self, request: Request, text: str, status: int = 200, **context: Any) -> Response:
        """A page that says one thing: *text* names a word of portal_words.html."""
        return self.page(request, "notice.html", status=status, text=text, **context)

    def not_found(self, request: Request) -> HTMLResponse:
        return self.pages.not_found(request)

    async def form(self, request: Request) -> dict[str, str] | Response:
        """The POSTed form, or the answer to give when it is refused."""
        try:
            form = await read_form(request)
        except FormTooLarge:
            return self.message(request, "form_too_large", status=413)
        if not valid_csrf(request, form, self.secret):
            return self.message(request, "form_expired", status=403)
        return form

    async def managed_form(self, request: Request) -> tuple[dict[str, str], MailList] | Response:
        """The POSTed form of a moderation or roster page and its list, or the answer to
        give: 403 without a valid CSRF token, 404 for anyone who may not manage the list."""
        form = await self.form(request)
        if isinstance(form, Response):
            return form
        mlist = await asyncio.to_thread(self.managed_list, request)
        if mlist is None:
            return self.not_found(request)
        return form, mlist

    def base_url(self, request: Request) -> str:
        web = self.app.config.web
        return (web.base_url if web and web.base_url else str(request.base_url)).rstrip("/")

    def is_admin(self, address: str | None) -> bool:
        web = self.app.config.web
        return bool(address and web and address in web.admins)

    def managed_list(self, request: Request) -> MailList | None:
        """The list named in the path when the visitor may manage it; None: answer 404."""
        try:
            with self.app.sessions() as session:
                mlist = get_list(session, request.path_params["name"], self.app.domain)
        except UnknownList:
            return None
        return mlist if self.may_manage(mlist, current_address(request)) else None

    def may_manage(self, mlist: MailList, address: str | None) -> bool:
        """Moderators, owners and ``[web] admins`` see held posts and the roster."""
        staff = {*mlist.config.moderators, *mlist.config.owners}
        return bool(address) and (address in staff or self.is_admin(address))


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"
