"""The address of MAIL FROM and RCPT TO, read without the email package when it is plain.

aiosmtpd reads it with ``email._header_value_parser.get_angle_addr``: 150 us an address, a
tenth of intake's CPU a message. Nearly every address an MTA sends is ``<dot-atom@domain>``,
whose reading is its own text; that form is read here with one regular expression, with the
same result, and anything else (quoted local parts, comments, address literals, source
routes, a local part limit) still goes to aiosmtpd.
"""

from __future__ import annotations

import re

from aiosmtpd.smtp import SMTP

ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"[A-Za-z0-9-]+"
# The address, and a single space before the parameters.
PLAIN = re.compile(rf"<({ATOM}(?:\.{ATOM})*@{LABEL}(?:\.{LABEL})*)>(?: )?")


class PlainAddresses:
    """A mixin for aiosmtpd's SMTP or LMTP protocol class."""

    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = PLAIN.match(arg) if arg and not self.local_part_limit else None
        if plain is None:
            return super()._getaddr(arg)  # type: ignore[misc]
        rest = arg[plain.end() :]
        # get_angle_addr drops the white space and comments after ">": left to it.
        if rest[:1].isspace() or rest[:1] == "(":
            return super()._getaddr(arg)  # type: ignore[misc]
        return plain.group(1), rest


def with_plain_addresses(cls: type[SMTP]) -> type[SMTP]:
    """*cls* (SMTP or LMTP) reading plain addresses without the email package."""
    return type(f"Plain{cls.__name__}", (PlainAddresses, cls), {})
