"""Lists as the rest of the server sees them: a database row plus its validated settings."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listserv.config import ConfigError, ListConfig
from listserv.config_values import build
from listserv.mail.addresses import list_address
from listserv.store.models import MailingList, Member


class UnknownList(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no list named {name!r}")


@dataclass(frozen=True)
class MailList:
    id: int
    config: ListConfig
    domain: str

    @property
    def name(self) -> str:
        return self.config.name

    def address(self, role: str = "post", detail: str = "") -> str:
        return list_address(self.name, self.domain, role, detail)

    @property
    def list_id(self) -> str:
        """The RFC 2919 list identifier, ``name.domain``."""
        return f"{self.name}.{self.domain}"


def settings_to_config(settings: dict) -> ListConfig:
    # Validating the settings is costly next to reading them, and they rarely change: the
    # router reads a list for every message.
    return _config_from_json(json.dumps(settings, sort_keys=True, default=str))


@functools.lru_cache(maxsize=256)
def _config_from_json(text: str) -> ListConfig:
    settings = json.loads(text)
    try:
        return build(ListConfig, settings, f"lists.{settings.get('name', '?')}")
    except ConfigError:
        # Settings written by an older version may lack keys or carry retired ones: keep
        # what is still known and take defaults for the rest.
        known = {k: v for k, v in settings.items() if k in ListConfig.__dataclass_fields__}
        return build(ListConfig, known, f"lists.{settings.get('name', '?')}")


def get_list(session: Session, name: str, domain: str) -> MailList:
    row = session.scalar(select(MailingList).where(MailingList.name == name))
    if row is None:
        raise UnknownList(name)
    return MailList(row.id, settings_to_config(row.settings), domain)


def list_by_id(session: Session, list_id: int, domain: str) -> MailList:
    row = session.get(MailingList, list_id)
    if row is None:
        raise UnknownList(str(list_id))
    return MailList(row.id, settings_to_config(row.settings), domain)


def all_lists(session: Session, domain: str) -> list[MailList]:
    rows = session.scalars(select(MailingList).order_by(MailingList.name))
    return [MailList(row.id, settings_to_config(row.settings), domain) for row in rows]


def list_names(session: Session) -> set[str]:
    return set(session.scalars(select(MailingList.name)))


def save_list(session: Session, config: ListConfig) -> MailingList:
    """Create the list, or update its settings; members are left as they are."""
    row = session.scalar(select(MailingList).where(MailingList.name == config.name))
    if row is None:
        row = MailingList(name=config.name, settings=config.settings())
        session.add(row)
    else:
        row.settings = config.settings()
    session.flush()
    return row


def member_count(session: Session, list_id: int) -> int:
    return session.scalar(select(func.count()).where(Member.list_id == list_id)) or 0


def list_exists(session: Session, name: str) -> bool:
    return session.scalar(select(MailingList.id).where(MailingList.name == name)) is not None


def delete_list(session: Session, list_id: int) -> None:
    """Delete the list; the database deletes its members, tokens and held posts with it."""
    row = session.get(MailingList, list_id)
    if row is not None:
        session.delete(row)
        session.flush()
