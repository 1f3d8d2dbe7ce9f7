"""The portal that ``serve`` runs itself shares one interpreter, and one event loop, with
intake and delivery: it renders few pages at once, so a crowd of readers cannot keep mail
waiting for the interpreter lock (bench/readers_during_fanout.py --embedded)."""

from __future__ import annotations

import asyncio
import socket

import anyio.to_thread
import pytest

from tests.support import free_port


async def portal_threads() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().total_tokens)


def test_the_portal_in_serve_renders_at_most_two_pages_at_once(start_server, tmp_path) -> None:
    server = start_server(
        web={"listen": "127.0.0.1:0", "secret_file": str(tmp_path / "web.secret")}
    )
    running = asyncio.run_coroutine_threadsafe(portal_threads(), server.loop)
    assert running.result(timeout=30) == 2


def test_serve_runs_no_portal_when_listserv_web_does(start_server, tmp_path) -> None:
    port = free_port()
    web = {"listen": f"127.0.0.1:{port}", "secret_file": str(tmp_path / "web.secret")}
    start_server(web={**web, "embedded": False})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    start_server(web=web)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
