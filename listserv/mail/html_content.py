"""HTML in mail as something safe to show or read: sanitised for an HTML page (no scripts,
styles, images or other remote content) or turned into plain text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

# No images (remote ones would report the reader), forms, frames or styles.
SAFE_TAGS = nh3.ALLOWED_TAGS - {"img", "map", "area"}
SAFE_URL_SCHEMES = {"http", "https", "mailto"}
DROPPED_WITH_CONTENT = {"script", "style", "title", "head"}


class TextFromHtml(HTMLParser):
    """Readable text from HTML: blocks on their own lines, links with their address, quoted
    text (``blockquote``) marked ``>`` as in plain-text mail, so readers of commands and
    replies stop at it."""

    HEADINGS = frozenset(f"h{level}" for level in range(1, 7))
    BLOCKS = HEADINGS | {"p", "div", "br", "hr", "pre", "blockquote", "section", "article"}
    BLOCKS |= {"table", "tr", "ul", "ol", "li", "dt", "dd", "header", "footer"}
    SKIPPED = DROPPED_WITH_CONTENT

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.pre = 0
        self.quoted = 0
        self.line_start = True
        self.href: list[str] = []

    def _append(self, text: str) -> None:
        self.out.append(text)
        if text.strip():
            self.line_start = text.endswith("\n")
        elif "\n" in text:
            self.line_start = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self._append("\n")
        if tag == "blockquote":
            self.quoted += 1
        if tag == "li":
            self._append("* ")
        if tag == "pre":
            self.pre += 1
        if tag == "a":
            self.href.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self._append("\n")
        if tag == "blockquote":
            self.quoted = max(0, self.quoted - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "a" and self.href:
            href = self.href.pop()
            if href.startswith(("http://", "https://", "mailto:")) and href not in self.out[-1:]:
                self._append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        text = data if self.pre else re.sub(r"\s+", " ", data)
        if self.quoted and self.line_start and text.strip():
            text = "> " + text.lstrip()
        self._append(text)

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self.out).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(source: str) -> str:
    parser = TextFromHtml()
    parser.feed(source)
    parser.close()
    return parser.text()


def sanitize_html(source: str) -> str:
    """HTML safe to show inside the digest: no scripts, styles, images or remote content."""
    return nh3.clean(
        source,
        tags=SAFE_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        url_schemes=SAFE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
