"""A browser of the portal for tests: an httpx client against the real running server, which
reads the CSRF token from each form it fills and signs in with the link the sink received."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from support import RunningServer, Sink

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
SIGN_IN_LINK = re.compile(r"https?://\S+/login/([A-Za-z0-9_-]{20,})")


class Browser:
    def __init__(self, server: RunningServer) -> None:
        assert server.server.web is not None
        self.server = server
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{server.server.web.port}", timeout=15
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]

    def csrf(self, page: str = "/login") -> str:
        """The CSRF token of this browser, as a form on *page* carries it."""
        found = CSRF.search(self.get(page).text)
        assert found, f"no CSRF token on {page}"
        return found.group(1)

    def submit(self, path: str, data: dict[str, str] | None = None, page: str = "/login"):
        """POST a form the way the page's form would, CSRF token included."""
        return self.client.post(path, data={**(data or {}), "csrf": self.csrf(page)})

    def sign_in(self, sink: Sink, address: str) -> httpx.Response:
        """Ask for a link, read it from the mail, use it."""
        before = len(sign_in_tokens(sink, address))
        answer = self.submit("/login", {"address": address})
        assert answer.status_code == 200, answer.text
        sink.wait_for(lambda _: len(sign_in_tokens(sink, address)) > before)
        token = sign_in_token(sink, address)
        return self.submit(f"/login/{token}", page=f"/login/{token}")


def sign_in_tokens(sink: Sink, address: str) -> list[str]:
    """The tokens of the sign-in links mailed to *address*, oldest first (other mail to it,
    such as moderation requests, is passed over)."""
    tokens = []
    for received in sink.messages_to(address):
        message = received.message
        if not message.is_multipart():
            found = SIGN_IN_LINK.search(message.get_content())
            tokens += [found.group(1)] if found else []
    return tokens


def sign_in_token(sink: Sink, address: str) -> str:
    tokens = sign_in_tokens(sink, address)
    assert tokens, f"no sign-in link was mailed to {address}"
    return tokens[-1]


@contextmanager
def browsing(server: RunningServer) -> Iterator[Browser]:
    browser = Browser(server)
    try:
        yield browser
    finally:
        browser.close()


def portal_web(tmp_path: Path, **settings: object) -> dict[str, object]:
    """A ``[web]`` section for a test: any free port, a secret of the test's own."""
    return {"listen": "127.0.0.1:0", "secret_file": str(tmp_path / "web.secret"), **settings}
