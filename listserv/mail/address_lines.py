"""Reading a file of addresses, one a line, as exported from a spreadsheet or another list."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import parseaddr

# "Name <address>" or a bare address with nothing parseaddr would read differently: read
# without it, which is most of the time of importing 100,000 members.
PLAIN_ADDRESS_LINE = re.compile(r'^(?:([^"(),;:<>@\[\]\\]*?)\s*<([^<>\s"]+)>|([^<>\s"(),;:]+))$')


def read_addresses(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, display name, address) for each address line; blank lines and lines
    starting with ``#`` are skipped. Addresses are not checked here."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        plain = PLAIN_ADDRESS_LINE.match(line)
        if plain:
            yield number, plain[1] or "", plain[2] or plain[3]
            continue
        display_name, address = parseaddr(line)
        if not address or (not display_name and address != line.strip("<>")):
            address = line  # parseaddr dropped part of it: let the whole line be refused
        yield number, display_name, address
