"""Sample messages and checks shared by tests of several packages."""

from __future__ import annotations

from email.message import EmailMessage

from support import DOMAIN


def dsn_bytes(rcpt: str, action: str = "failed", status: str = "5.1.1", diag: str = "") -> bytes:
    diag = diag or f"smtp; 550 {status} <{rcpt}>: Recipient address rejected: User unknown"
    return (
        "From: MAILER-DAEMON@mx.x.example (Mail Delivery System)\r\n"
        f"To: test-bounces@{DOMAIN}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.x.example\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diag}\r\n"
        "\r\n--B--\r\n"
    ).encode()


SIGNED_PART = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Подписанный текст.  \r\nС пробелами в конце строки.   \r\n".encode()
)
SIGNED = (
    b"From: a@x.example\r\n"
    b"To: environment-kz@lists.example.org\r\n"
    b"Subject: signed\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/signed; micalg=pgp-sha256;\r\n protocol="application/pgp-signature";'
    b' boundary="sig-boundary"\r\n'
    b"\r\n"
    b"This is an OpenPGP/MIME signed message.\r\n"
    b"--sig-boundary\r\n" + SIGNED_PART + b"--sig-boundary\r\n"
    b"Content-Type: application/pgp-signature; name=signature.asc\r\n"
    b"\r\n"
    b"-----BEGIN PGP SIGNATURE-----\r\niQEzBAEBCAAdFiEE\r\n-----END PGP SIGNATURE-----\r\n"
    b"\r\n--sig-boundary--\r\n"
)


def signed_entity(raw: bytes) -> bytes:
    """The bytes of the first part of the multipart/signed body, as a verifier sees them."""
    start = raw.index(b"--sig-boundary\r\n") + len(b"--sig-boundary\r\n")
    return raw[start : raw.index(b"\r\n--sig-boundary\r\n", start)]


def assert_list_headers(got: EmailMessage, name: str, title: str) -> None:
    """The RFC 2369/2919 headers, Precedence and loop marker of list NAME, each once."""
    phrase = f'"{title}"' if title.isascii() else title  # RFC 2047 words are never quoted
    assert got.get_all("List-Id") == [f"{phrase} <{name}.{DOMAIN}>"]
    assert got.get_all("List-Post") == [f"<mailto:{name}@{DOMAIN}>"]
    assert got.get_all("List-Help") == [f"<mailto:{name}-request@{DOMAIN}?subject=help>"]
    assert got.get_all("List-Subscribe") == [f"<mailto:{name}-join@{DOMAIN}>"]
    assert got.get_all("List-Unsubscribe") == [f"<mailto:{name}-leave@{DOMAIN}>"]
    assert got.get_all("List-Owner") == [f"<mailto:{name}-owner@{DOMAIN}>"]
    assert got.get_all("Precedence") == ["list"]
    assert got.get_all("X-BeenThere") == [f"{name}@{DOMAIN}"]
