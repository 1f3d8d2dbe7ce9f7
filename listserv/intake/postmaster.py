"""``postmaster@domain``: every domain that takes mail must accept it (RFC 5321 4.5.1). It is
forwarded to ``[server] postmaster``, or when that is empty to the owners of every list, with
the same loop guard as ``NAME-owner``. The forward has the null envelope sender: no list's
bounce address stands for the site, and a bounce of it must not come back here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.intake.owner import forward
from listserv.store.lists import all_lists
from listserv.store.models import InboxMessage


def site_owners(app: App, session: Session) -> list[str]:
    if app.config.server.postmaster:
        return list(app.config.server.postmaster)
    found: dict[str, None] = {}
    for mlist in all_lists(session, app.domain):
        found.update(dict.fromkeys(mlist.config.owners or mlist.config.moderators))
    return list(found)


def forward_to_postmaster(app: App, session: Session, stored: InboxMessage) -> str:
    owners = site_owners(app, session)
    if not owners:
        return "discarded: nobody to forward postmaster mail to"
    refusal = forward(app, session, stored, f"postmaster@{app.domain}", owners, None)
    return refusal or "forwarded to the postmaster"
