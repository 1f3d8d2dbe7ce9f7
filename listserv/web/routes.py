"""The portal's own areas, in one table: directory and subscription, confirmation links,
account (sign-in, /me), moderation, roster and the REST API.
web/app.py mounts ``portal_routes`` beside the one-click and archive routes."""

from __future__ import annotations

from starlette.routing import BaseRoute

from listserv.app import App
from listserv.auth.one_click import load_secret
from listserv.web.account import account_routes
from listserv.web.api import api_routes
from listserv.web.confirm import confirm_routes
from listserv.web.directory import directory_routes
from listserv.web.moderation import moderation_routes
from listserv.web.pages import Pages
from listserv.web.portal import Portal
from listserv.web.roster import roster_routes


def make_portal(app: App, pages: Pages) -> Portal:
    assert app.config.web is not None
    secret = load_secret(app.config.resolve(app.config.web.secret_file))
    return Portal(app, pages, secret)


def portal_routes(app: App, pages: Pages) -> list[BaseRoute]:
    portal = make_portal(app, pages)
    return [
        *directory_routes(portal),
        *confirm_routes(portal),
        *account_routes(portal),
        *moderation_routes(portal),
        *roster_routes(portal),
        *api_routes(portal),
    ]
