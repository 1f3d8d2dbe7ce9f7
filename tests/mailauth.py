"""Test helpers for DKIM, ARC and DMARC: keys, their DNS records in the stub, verification."""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnsstub import DnsStub

SELECTOR = "ls1"


@cache
def rsa_key(label: str) -> tuple[bytes, str]:
    """A private key PEM and its DKIM record, made once per test run per *label*."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")


def publish_key(stub: DnsStub, selector: str, domain: str, label: str) -> bytes:
    """Publish the key *label* at selector._domainkey.domain; returns its private PEM."""
    pem, record = rsa_key(label)
    stub.records[f"{selector}._domainkey.{domain}"] = [record]
    return pem


def write_key(directory: Path, label: str = "list") -> Path:
    path = directory / "keys" / f"{SELECTOR}.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rsa_key(label)[0])
    return path


def stub_dnsfunc(stub: DnsStub):  # type: ignore[no-untyped-def]
    """A dkimpy ``dnsfunc`` reading the stub's records directly."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        records = stub.records.get(name.decode().rstrip(".").lower())
        return records[0].encode() if records else None

    return lookup


def dkim_verifies(raw: bytes, stub: DnsStub) -> bool:
    return bool(dkim.verify(raw, dnsfunc=stub_dnsfunc(stub)))


def signing_domain_of(raw: bytes) -> str:
    d = dkim.DKIM(raw)
    d.verify_headerprep()
    return d.domain.decode()


def sign_as_poster(raw: bytes, stub: DnsStub, domain: str) -> bytes:
    """*raw* DKIM-signed by the poster's domain, whose key the stub publishes."""
    pem = publish_key(stub, "mx", domain, f"poster-{domain}")
    signature = dkim.sign(
        raw,
        b"mx",
        domain.encode(),
        pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return signature + raw
