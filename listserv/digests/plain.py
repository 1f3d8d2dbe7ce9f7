"""The plain-text digest (RFC 1153): one UTF-8 text/plain part, posts between separator
lines."""

from __future__ import annotations

from email.message import EmailMessage

from listserv.digests.bodies import BodyStyle, omitted_note, readable
from listserv.digests.format import (
    KEPT_HEADERS,
    Issue,
    footer_text,
    header_text,
    list_footer,
    render,
    with_digest_headers,
)
from listserv.mail.codec import MAIL_POLICY
from listserv.mail.html_content import html_to_text
from listserv.mail.templates import Templates, body_encoding, one_line

# RFC 1153: the preamble ends with 70 hyphens, each message with 30.
PREAMBLE_SEPARATOR = "-" * 70
MESSAGE_SEPARATOR = "-" * 30


def stuffed(text: str) -> str:
    """A body line that looks like a digest separator would split the digest: indent it."""
    lines = text.splitlines()
    return "\n".join(
        " " + line if line in (MESSAGE_SEPARATOR, PREAMBLE_SEPARATOR) else line for line in lines
    )


def rfc1153_text(issue: Issue, templates: Templates) -> str:
    """The whole issue as RFC 1153 text."""
    language = issue.mlist.config.language
    style = BodyStyle(
        text=lambda s: s,
        html=html_to_text,
        omitted=omitted_note(templates, language),
        prefer="text/plain",
        footer=list_footer(templates, issue),
    )
    out = [render(templates, issue, "digest_masthead.txt").rstrip("\n"), ""]
    out += [render(templates, issue, "digest_toc.txt").rstrip("\n"), "", PREAMBLE_SEPARATOR, ""]
    for post in issue.posts:
        for name in KEPT_HEADERS:
            value = header_text(post, name)
            # Every message of an RFC 1153 digest starts with headers; Subject is always there.
            if value or name == "Subject":
                out.append(f"{name}: {value}")
        body = "\n\n".join(piece.strip("\n") for piece in readable(post, style))
        out += ["", stuffed(body), "", MESSAGE_SEPARATOR, ""]
    # The trailer: the list's footer, then RFC 1153's end line.
    out += [stuffed(footer_text(templates, issue).rstrip("\n")), ""]
    end = one_line(render(templates, issue, "digest_end.txt"))
    out += [end, "*" * len(end), ""]
    return "\n".join(out)


def plain_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """A single UTF-8 text/plain part in RFC 1153 form."""
    message = EmailMessage(policy=MAIL_POLICY)
    text = rfc1153_text(issue, templates)
    message.set_content(text, charset="utf-8", cte=body_encoding(text))
    return with_digest_headers(message, issue, templates)
