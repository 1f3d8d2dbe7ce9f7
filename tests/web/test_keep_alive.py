"""A keep-alive connection left idle as long as an HTTP client keeps it (httpx: 5 s) still
answers its next request: uvicorn's own 5 s made a client reusing it just then get a
connection reset (bench/readers_during_fanout.py saw a few a run)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from support import list_table
from web_support import portal_web

REQUEST = b"GET /static/portal.css HTTP/1.1\r\nHost: portal\r\n\r\n"


def answer(connection: socket.socket) -> bytes:
    """One whole response (headers and their Content-Length of body); b"" if closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def test_an_idle_keep_alive_connection_outlasts_the_clients_idle_timeout(
    start_server, tmp_path: Path
) -> None:
    server = start_server(lists=[list_table("test")], web=portal_web(tmp_path))
    assert server.server.web is not None
    with socket.create_connection(("127.0.0.1", server.server.web.port), timeout=10) as connection:
        connection.sendall(REQUEST)
        assert answer(connection).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # not waiting for anything: the idle time is what is tested
        connection.sendall(REQUEST)
        assert answer(connection).startswith(b"HTTP/1.1 200")
