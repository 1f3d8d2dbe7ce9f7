"""The directory (``/``), a list's page (``/lists/NAME/``) and subscribing from it.

A subscription asked for on the web is the one asked for by mail: the same confirmation mail
(``commands.subscriptions.request_confirmation``) and the same token. The page answers the
same whether or not the address is subscribed, so it tells nobody who is on a list.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from listserv.commands.subscriptions import SUBSCRIBE, request_confirmation
from listserv.mail.addresses import InvalidAddress, list_address, normalize
from listserv.mail.templates import BUILTIN
from listserv.mail.wording import translate, translations
from listserv.store.db import transaction
from listserv.store.lists import UnknownList, get_list
from listserv.store.portal import list_settings, settings_naming, within_limit
from listserv.web.pages import choose_language, remember_language
from listserv.web.portal import Portal, client_of

# The network's regions first, in this order; any other after them, by name.
REGION_ORDER = ("Kazakhstan", "Kyrgyzstan", "Tajikistan", "Uzbekistan", "Central Asia")
SUBSCRIBE_MODES = ("regular", "digest", "plain")
SUBSCRIPTIONS_PER_CLIENT = 20
SUBSCRIPTIONS_PER_ADDRESS = 5
DIRECTORY_SECONDS = 10.0


@cache
def titles() -> dict[str, dict[str, dict[str, str]]]:
    """The same region and topic names the mail uses (``templates/translations.toml``)."""
    return translations(BUILTIN)


def translated(kind: str, name: str, lang: str) -> str:
    return translate(titles(), kind, name, lang)


def region_title(name: str, lang: str) -> str:
    """A region's name in *lang* (as configured when there is no translation)."""
    return translated("regions", name, lang)


def topic_title(name: str, lang: str) -> str:
    """A topic's name in *lang* (as configured when there is no translation)."""
    return translated("topics", name, lang)


@dataclass(frozen=True)
class Entry:
    """A list as the directory and ``/me`` show it, read from its stored settings (defaults
    as in ListConfig)."""

    name: str
    title: str
    address: str
    region: str
    topic: str
    language: str
    advertised: bool
    managers: frozenset[str]

    @classmethod
    def of(cls, name: str, settings: dict, domain: str) -> Entry:
        return cls(
            name=name,
            title=settings.get("title") or name,
            address=list_address(name, domain),
            region=settings.get("region", ""),
            topic=settings.get("topic", ""),
            language=settings.get("language", "en"),
            advertised=settings.get("advertised", True),
            managers=frozenset([*settings.get("moderators", []), *settings.get("owners", [])]),
        )


def entries(session: Session, domain: str) -> list[Entry]:
    return [Entry.of(name, settings, domain) for name, settings in list_settings(session)]


def managed_by(session: Session, domain: str, address: str) -> list[Entry]:
    """The lists *address* moderates or owns."""
    found = [
        Entry.of(name, settings, domain) for name, settings in settings_naming(session, address)
    ]
    return [entry for entry in found if address in entry.managers]


@dataclass
class Region:
    name: str
    title: str
    topics: dict[str, list[Entry]] = field(default_factory=dict)


def grouped(lists: list[Entry], lang: str) -> list[Region]:
    """Advertised lists by region (the network's order, then by name), then by topic."""
    regions: dict[str, Region] = {}
    for entry in lists:
        if not entry.advertised:
            continue
        name = entry.region
        region = regions.setdefault(name, Region(name, region_title(name, lang) if name else ""))
        region.topics.setdefault(topic_title(entry.topic, lang), []).append(entry)

    def order(region: Region) -> tuple[int, str]:
        known = region.name in REGION_ORDER
        rank = REGION_ORDER.index(region.name) if known else len(REGION_ORDER) + (not region.name)
        return rank, region.title

    for region in regions.values():
        region.topics = dict(sorted(region.topics.items()))
    return sorted(regions.values(), key=order)


def directory_routes(portal: Portal) -> list[Route]:
    app = portal.app

    # The directory of 1,000 lists, rendered per language at most every DIRECTORY_SECONDS:
    # lists change when an operator changes them, and the page is the same for everyone.
    rendered: dict[str, tuple[float, str]] = {}

    def directory(request: Request) -> Response:
        lang = choose_language(request)
        cached = rendered.get(lang)
        if cached is None or time.monotonic() - cached[0] > DIRECTORY_SECONDS:
            with app.sessions() as session:
                lists = entries(session, app.domain)
            html = portal.pages.render(
                lang,
                "directory.html",
                root=request.scope.get("root_path", ""),
                p=portal.words(request),
                regions=grouped(lists, lang),
            )
            cached = rendered[lang] = (time.monotonic(), html)
        response = HTMLResponse(cached[1])
        remember_language(request, response)
        return response

    def list_page(request: Request, status: int = 200, **context: object) -> Response:
        try:
            with app.sessions() as session:
                mlist = get_list(session, request.path_params["name"], app.domain)
        except UnknownList:
            return portal.not_found(request)
        lang = choose_language(request)
        return portal.page(
            request,
            "list.html",
            status=status,
            mlist=mlist,
            region=region_title(mlist.config.region, lang),
            topic=topic_title(mlist.config.topic, lang),
            modes=SUBSCRIBE_MODES,
            **context,
        )

    def ask(name: str, address: str, delivery: str, client: str) -> bool | None:
        """Mail the confirmation request; None for an unknown list, False when the client
        asked too often."""
        with transaction(app.sessions) as session:
            try:
                mlist = get_list(session, name, app.domain)
            except UnknownList:
                return None
            if not within_limit(session, "subscribe", f"client:{client}", SUBSCRIPTIONS_PER_CLIENT):
                return False
            # An address asked for too often gets no more mail; the page says the same.
            if within_limit(session, "subscribe", f"address:{address}", SUBSCRIPTIONS_PER_ADDRESS):
                request_confirmation(app, session, mlist, address, SUBSCRIBE, delivery=delivery)
            return True

    async def subscribe(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        delivery = form.get("delivery") or "regular"
        try:
            address = normalize(form.get("address", ""))
        except InvalidAddress:
            return list_page(request, status=400, error="invalid_address")
        if delivery not in SUBSCRIBE_MODES:
            return list_page(request, status=400, error="bad_request")
        name = request.path_params["name"]
        asked = await asyncio.to_thread(ask, name, address, delivery, client_of(request))
        if asked is None:
            return portal.not_found(request)
        if not asked:
            return portal.message(request, "too_many", status=429)
        return list_page(request, sent=True)

    return [
        Route("/", directory, methods=["GET"]),
        Route("/lists/{name}/", list_page, methods=["GET"]),
        Route("/lists/{name}/subscribe", subscribe, methods=["POST"]),
    ]
