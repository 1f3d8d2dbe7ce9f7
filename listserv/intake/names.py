"""The names of the lists, as RCPT needs them: from memory, not a query per recipient.

The names read are trusted for ``ttl`` seconds (a list deleted meanwhile costs at most a
message the router records as failed); a recipient they do not name makes intake read them
again before refusing it, so a list created a moment ago by another process is never refused.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.orm import Session, sessionmaker

from listserv.store.lists import list_names

TTL = 5.0


class ListNames:
    def __init__(self, sessions: sessionmaker[Session], ttl: float = TTL) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.names: set[str] = set()
        self.read_at = float("-inf")
        self.refresh: asyncio.Future[set[str]] | None = None

    async def cached(self) -> set[str]:
        """The names as last read, read again when older than ``ttl``."""
        if time.monotonic() - self.read_at < self.ttl:
            return self.names
        return await self.reread()

    async def reread(self) -> set[str]:
        """The names as they are now in the database (for a recipient the cache lacks)."""
        # Sessions that miss at the same moment share one query.
        if self.refresh is None:
            self.refresh = asyncio.ensure_future(asyncio.to_thread(self._read))
        refresh = self.refresh
        try:
            return await asyncio.shield(refresh)
        finally:
            if self.refresh is refresh and refresh.done():
                self.refresh = None

    def _read(self) -> set[str]:
        with self.sessions() as session:
            names = list_names(session)
        self.names, self.read_at = names, time.monotonic()
        return names
