"""The MIME digest (RFC 2046 multipart/digest): each post attached whole, with only the
headers a digest keeps."""

from __future__ import annotations

import copy
from email.message import EmailMessage

from listserv.digests.format import (
    KEPT_HEADERS,
    Issue,
    footer_text,
    new_boundary,
    render,
    text_part,
    with_digest_headers,
)
from listserv.mail.codec import MAIL_POLICY
from listserv.mail.templates import Templates

# A MIME digest keeps those, what threading needs, and what describes the body.
MIME_KEPT_HEADERS = (*KEPT_HEADERS, "In-Reply-To", "References", "Reply-To", "MIME-Version")


def kept_post(post: EmailMessage) -> EmailMessage:
    """The post with only the headers a digest keeps (and its Content-* headers)."""
    kept = {h.lower() for h in MIME_KEPT_HEADERS}
    # A deep copy keeps the body byte for byte, 8-bit charsets included.
    trimmed = copy.deepcopy(post)
    for name in set(trimmed.keys()):
        if name.lower() not in kept and not name.lower().startswith("content-"):
            del trimmed[name]
    return trimmed


def mime_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """multipart/mixed: masthead and contents, multipart/digest of the posts, footer."""
    front = render(templates, issue, "digest_masthead.txt")
    front += "\n" + render(templates, issue, "digest_toc.txt")
    posts = EmailMessage(policy=MAIL_POLICY)
    posts.set_payload([])
    posts["Content-Type"] = "multipart/digest"
    new_boundary(posts)
    for post in issue.posts:
        part = EmailMessage(policy=MAIL_POLICY)
        part["Content-Type"] = "message/rfc822"
        # Posts may carry 8-bit bodies; the declaration also allows plain 7-bit ones.
        part["Content-Transfer-Encoding"] = "8bit"
        part.set_payload([kept_post(post)])
        posts.attach(part)
    message = EmailMessage(policy=MAIL_POLICY)
    message["Content-Type"] = "multipart/mixed"
    message.set_payload([text_part(front), posts, text_part(footer_text(templates, issue))])
    new_boundary(message)
    return with_digest_headers(message, issue, templates)
