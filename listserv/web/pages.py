"""Rendering portal pages: Jinja2 templates under ``templates/<lang>/web/`` (autoescaped), in
the visitor's language, with the security headers every answer carries.

A page template missing in a language falls back to English; the words of each language live
in ``templates/<lang>/web/words.html``, so the English pages serve every language until a
translator overrides a whole page.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from listserv.app import App
from listserv.mail.templates import environment

LANGUAGES = ("ru", "kk", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def message_path(message_id: str) -> str:
    """A Message-ID as it appears in a permalink: without <>, percent-encoded ("/" too)."""
    return quote(message_id, safe="@!$&'()*+,;=:~-._")


def time_element(date: datetime) -> Markup:
    """A date as pages show it (a filter rather than a macro: a month's page shows a
    thousand, and calling a macro costs ten times more)."""
    return Markup(f'<time datetime="{date.isoformat()}">{date:%Y-%m-%d %H:%M} UTC</time>')


def choose_language(request: Request) -> str:
    """``?lang=``, then the cookie, then Accept-Language, then English."""
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(LANGUAGE_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


class Pages:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.env = environment(override_dir, autoescape=True)
        self.env.filters["message_path"] = message_path
        self.env.filters["when"] = time_element

    def template(self, language: str, name: str) -> jinja2.Template:
        return self.env.select_template(
            [f"{language}/web/{name}", f"{DEFAULT_LANGUAGE}/web/{name}"]
        )

    def render(self, language: str, name: str, **context: Any) -> str:
        """A page: ``w`` holds the language's words, ``layout`` its base layout."""
        return self.template(language, name).render(
            lang=language,
            languages=LANGUAGES,
            w=self.template(language, "words.html").module,
            layout=self.template(language, "base.html"),
            **context,
        )

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        language = choose_language(request)
        root = request.scope.get("root_path", "")
        html = self.render(language, name, root=root, **context)
        response = HTMLResponse(html, status_code=status)
        remember_language(request, response)
        return response

    def not_found(self, request: Request) -> HTMLResponse:
        return self.page(request, "not_found.html", status=404)


def remember_language(request: Request, response: Response) -> None:
    """A language chosen with ``?lang=`` sticks, through a cookie."""
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES and request.cookies.get(LANGUAGE_COOKIE) != asked:
        response.set_cookie(
            LANGUAGE_COOKIE, asked, max_age=365 * 24 * 3600, httponly=True, samesite="lax"
        )


def visitor_of(request: Request) -> str | None:
    """The signed-in address (``sessions.Visitors`` puts it in the scope), else None."""
    visitor = request.scope.get("visitor")
    return visitor if isinstance(visitor, str) else None


def public_base(app: App, request: Request) -> str:
    """The portal's address as seen from outside: ``[web] base_url``, else as requested."""
    web = app.config.web
    return (web.base_url if web and web.base_url else str(request.base_url)).rstrip("/")
