"""The portal (``[web]``): one Starlette app for every page, link and feed, run by ``serve``
on its own event loop, or alone by ``listserv web`` (more processes, on more hosts, against
the same database).

Routes come from one table per area (one-click links, archives, search); every answer gets
the security headers of web/pages.py unless the route set its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listserv.app import App
from listserv.config import ConfigError, host_port
from listserv.web.archive import archive_routes
from listserv.web.metrics import metrics_routes
from listserv.web.one_click import one_click_routes
from listserv.web.pages import SECURITY_HEADERS, Pages
from listserv.web.routes import portal_routes
from listserv.web.search import search_routes
from listserv.web.sessions import Visitors

STATIC = Path(__file__).parent / "static"
# How long an idle keep-alive connection stays open. It must outlast the idle timeout of the
# clients and proxies that reuse connections (httpx 5 s, nginx 60 s): with uvicorn's 5 s, a
# client sending its next request just as the server gave up on the connection got it reset
# (bench/readers_during_fanout.py's few resets a run, none with this).
KEEP_ALIVE_SECONDS = 75
log = logging.getLogger(__name__)


class SecurityHeaders:
    """Adds the portal's security headers to every answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = dict(SECURITY_HEADERS)
                if scope.get("visitor"):
                    # What a signed-in member sees (addresses, members-only posts) must not
                    # be kept by a shared cache.
                    headers["Cache-Control"] = "private, no-store"
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in headers.items()
                    if name.lower().encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def make_web_app(app: App) -> Starlette:
    override = app.config.server.template_dir
    pages = Pages(app.config.resolve(override) if override else None)

    async def favicon(_request: Request) -> Response:
        # Browsers ask for it on pages without a <head> (raw messages) too.
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def not_found(request: Request, _error: Exception) -> Response:
        return pages.not_found(request)

    routes = [
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/favicon.ico", favicon),
        *one_click_routes(app),
        *metrics_routes(app),
        *archive_routes(app, pages),
        *search_routes(app, pages),
        *portal_routes(app, pages),
    ]
    portal = Starlette(routes=routes, exception_handlers={404: not_found})
    portal.add_middleware(Visitors, app=app)
    portal.add_middleware(SecurityHeaders)
    return portal


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` stops everything together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Web:
    """The portal's HTTP server; *threads*, when given, is how many pages it renders at once
    (Starlette renders them in anyio's worker threads; anyio's default is 40)."""

    def __init__(self, app: App, threads: int | None = None) -> None:
        assert app.config.web is not None
        self.listen = app.config.web.listen
        self.threads = threads
        self.server = EmbeddedServer(
            uvicorn.Config(
                make_web_app(app),
                lifespan="off",
                access_log=False,
                log_config=None,  # leave logging as serve set it up
                log_level="warning",
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
        )
        self.socket: socket.socket | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self.socket is not None
        return int(self.socket.getsockname()[1])

    def start(self) -> asyncio.Task[None]:
        """Bind now, so a port in use is an error at start naming the key, then serve."""
        host, port = host_port(self.listen, "web.listen")
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.socket = socket.create_server((host, port), family=family, backlog=128)
        except OSError as error:
            raise ConfigError(f"web.listen: cannot listen on {self.listen}: {error}") from None
        self.socket.setblocking(False)
        if self.threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        return self.task

    async def stop(self) -> None:
        """Let requests under way finish, then close."""
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=5)
        if self.socket is not None:
            self.socket.close()


def run_web(app: App) -> None:
    """``listserv web``: the portal alone, until SIGTERM or SIGINT."""

    async def portal() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        web = Web(app)
        task = web.start()
        log.info("portal on port %d", web.port)
        waiting = asyncio.create_task(stopping.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        await web.stop()

    asyncio.run(portal())
