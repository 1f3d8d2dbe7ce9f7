"""The HTML digest: multipart/alternative of the plain digest and the same issue as a page
for phones, each post's body escaped or sanitised."""

from __future__ import annotations

import html
from collections.abc import Callable
from email.message import EmailMessage

from markupsafe import Markup

from listserv.digests.bodies import BodyStyle, omitted_note, readable
from listserv.digests.format import (
    Issue,
    footer_text,
    list_footer,
    new_boundary,
    render,
    text_part,
    with_digest_headers,
)
from listserv.digests.plain import rfc1153_text
from listserv.mail.codec import MAIL_POLICY
from listserv.mail.html_content import sanitize_html
from listserv.mail.templates import Templates, one_line


def post_html(post: EmailMessage, note: Callable[[EmailMessage], str], footer: str) -> Markup:
    """A post's body as safe HTML: HTML sanitised, text escaped, the rest a note."""
    style = BodyStyle(
        text=lambda s: f'<div style="white-space:pre-wrap">{html.escape(s.strip())}</div>',
        html=sanitize_html,
        omitted=lambda part: f"<p><em>{html.escape(note(part))}</em></p>",
        prefer="text/html",
        footer=footer,
    )
    # Every piece is escaped or sanitised above.
    return Markup("\n".join(readable(post, style)))


def html_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """multipart/alternative: the plain digest, and the same issue as a page for phones."""
    note = omitted_note(templates, issue.mlist.config.language)
    footer = list_footer(templates, issue)
    page = render(
        templates,
        issue,
        "digest.html",
        subject=one_line(render(templates, issue, "digest_subject.txt")),
        masthead=render(templates, issue, "digest_masthead.txt"),
        footer=footer_text(templates, issue),
        bodies=[post_html(post, note, footer) for post in issue.posts],
    )
    message = EmailMessage(policy=MAIL_POLICY)
    message["Content-Type"] = "multipart/alternative"
    message.set_payload([text_part(rfc1153_text(issue, templates)), text_part(page, "html")])
    new_boundary(message)
    return with_digest_headers(message, issue, templates)
