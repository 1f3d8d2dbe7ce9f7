"""DKIM signing and ARC sealing of everything that leaves.

dkimpy does the parts that are easy to get subtly wrong (header parsing, relaxed
canonicalization, header selection, tag formatting and folding); the RSA step, pure Python in
dkimpy and some ten times slower than OpenSSL, is done by ``cryptography``. The body hash is
cached by body bytes, so signing one post for many recipients re-signs only the headers; for
bodies that differ per recipient only by a link (personalized copies) ``body_hasher`` hashes
the common part once.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from listserv.config import Config, ConfigError

log = logging.getLogger(__name__)
RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
# The headers that matter to receivers and to members, signed when present. From is signed
# one extra time so that no second From can be added without breaking the signature.
SIGNED_HEADERS = (
    b"from",
    b"sender",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"list-id",
    b"list-post",
    b"list-help",
    b"list-subscribe",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-owner",
    b"list-archive",
    b"precedence",
    b"auto-submitted",
)
BODY_HASH_CACHE = 64
HEAD_END = re.compile(rb"\r?\n\r?\n")
LINE_END = re.compile(rb"\r?\n")
# What relaxed body canonicalization touches: a value free of these canonicalizes to itself.
CANONICALIZED = re.compile(rb"[ \t\r\n]")
SIGNATURE = b"DKIM-Signature"


def signed_header_value(  # type: ignore[no-untyped-def]
    key: rsa.RSAPrivateKey,
    fields: list[tuple[bytes, bytes]],
    headers,
    include_headers: list[bytes],
    canon_policy,
    header_name: bytes,
    standardize: bool = False,
) -> bytes:
    """The value of a signature header: the same steps as dkimpy's DomainSigner.gen_header,
    minus its RSA, on *headers* already canonicalized."""
    value = b"; ".join(b"=".join(x) for x in fields)
    if not standardize:
        value = dkim.fold(value, namelen=len(header_name), linesep=b"\r\n")
    value = dkim.RE_BTAG.sub(b"\\1", value)
    hasher = hashlib.sha256()
    dkim.hash_headers(
        hasher, canon_policy, headers, include_headers, (header_name, b" " + value), {}
    )
    signature = key.sign(hasher.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    index = next(i for i, (tag, _) in enumerate(fields) if tag == b"b")
    fields[index] = (b"b", base64.b64encode(signature))
    value = b"; ".join(b"=".join(x) for x in fields) + b"\r\n"
    if not standardize:
        value = dkim.fold(value, namelen=len(header_name), linesep=b"\r\n")
    return value


class OpenSSLSigning:
    """Replaces dkimpy's pure-Python RSA in ``gen_header`` with OpenSSL's; mixed into dkimpy's
    ARC so that everything else it does is its own."""

    key: rsa.RSAPrivateKey

    def gen_header(  # type: ignore[no-untyped-def]
        self, fields, include_headers, canon_policy, header_name, pk, standardize=False
    ) -> bytes:
        headers = canon_policy.canonicalize_headers(self.headers)  # type: ignore[attr-defined]
        return signed_header_value(
            self.key, fields, headers, include_headers, canon_policy, header_name, standardize
        )


class _ARC(OpenSSLSigning, dkim.ARC):
    pass


class Signer:
    """Signs with one key for one domain: ``sign(raw)`` adds a DKIM-Signature,
    ``seal(raw)`` an ARC set carrying this server's Authentication-Results."""

    def __init__(self, key_pem: bytes, selector: str, domain: str, authserv_id: str) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        self.key = key
        # dkimpy's ARC code parses the key itself before calling gen_header.
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.authserv_id = authserv_id.encode("ascii")
        self._body_hashes: OrderedDict[bytes, bytes] = OrderedDict()

    def body_hash(self, body: bytes) -> bytes:
        """bh= of *body* (as it follows the blank line), computed once per distinct body."""
        cached = self._body_hashes.get(body)
        if cached is None:
            cached = base64.b64encode(hashlib.sha256(canonical_body(body)).digest())
            self._body_hashes[body] = cached
            if len(self._body_hashes) > BODY_HASH_CACHE:
                self._body_hashes.popitem(last=False)
        else:
            self._body_hashes.move_to_end(body)
        return cached

    def sign(self, raw: bytes, body_hash: bytes = b"") -> bytes:
        """*raw* with a DKIM-Signature header on top (rsa-sha256, relaxed/relaxed); a message
        dkimpy cannot read goes out unsigned rather than not at all. *body_hash*, when the
        caller knows it (``body_hasher``), saves hashing the body."""
        try:
            return self._sign(raw, body_hash)
        except dkim.DKIMException as error:
            log.warning("not DKIM-signed: %s", error)
            return raw

    def _sign(self, raw: bytes, body_hash: bytes) -> bytes:
        # dkimpy is handed the head only: splitting a large body into lines on every call
        # would cost as much as the RSA step.
        match = HEAD_END.search(raw)
        head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")
        headers = canonical_headers(head + b"\r\n")
        return self.signature(headers, body_hash or self.body_hash(body)) + raw

    def copy_signer(self, head: bytes) -> Callable[[bytes, bytes], bytes]:
        """``(lines, body hash) → DKIM-Signature header`` for copies of a message made of
        *head*, then header *lines* of their own, then a body: the common head is parsed and
        canonicalized once (per copy that is as much Python work as the rest of signing). A
        head dkimpy cannot read gives unsigned copies, as ``sign`` does."""
        try:
            common = canonical_headers(head)
        except dkim.DKIMException as error:
            log.warning("not DKIM-signed: %s", error)
            return lambda lines, body_hash: b""

        def signature(lines: bytes, body_hash: bytes) -> bytes:
            try:
                return self.signature(common + canonical_headers(lines), body_hash)
            except dkim.DKIMException as error:
                log.warning("not DKIM-signed: %s", error)
                return b""

        return signature

    def signature(self, headers: list[tuple[bytes, bytes]], body_hash: bytes) -> bytes:
        """The DKIM-Signature header line of a message with the relaxed canonical *headers*
        and body hash *body_hash*."""
        present = {name for name, _ in headers}
        include = [h for h in SIGNED_HEADERS if h in present] + [b"from"]
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", b"relaxed/relaxed"),
            (b"d", self.domain),
            (b"s", self.selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            # A long placeholder puts b= on a line of its own, as dkimpy does.
            (b"b", b"0" * 60),
        ]
        value = signed_header_value(self.key, fields, headers, include, RELAXED, SIGNATURE)
        return SIGNATURE + b": " + value

    def seal(self, raw: bytes) -> bytes:
        """*raw* with an ARC set (RFC 8617) on top, recording the Authentication-Results of
        this server; unchanged when the message carries none."""
        try:
            sealer = _ARC(raw, linesep=b"\r\n")
            sealer.key = self.key
            include = [h for h in SIGNED_HEADERS if h in {n.lower() for n, _ in sealer.headers}]
            arc_set = sealer.sign(
                self.selector, self.domain, self.key_pem, self.authserv_id, include_headers=include
            )
        except dkim.DKIMException as error:
            log.warning("not ARC-sealed: %s", error)
            return raw
        return b"".join(arc_set) + raw


def canonical_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header lines *head* (each ending in CRLF) in relaxed canonical form."""
    return RELAXED.canonicalize_headers(dkim.rfc822_parse(head)[0])


def canonical_body(body: bytes) -> bytes:
    """*body* in relaxed canonical form (RFC 6376 section 3.4.4), as bh= hashes it."""
    return RELAXED.canonicalize_body(LINE_END.sub(b"\r\n", body))


def body_hasher(parts: list[bytes], marker: bytes) -> Callable[[bytes], bytes]:
    """``value → bh=`` of the body ``value.join(parts)``, for bodies that differ only by a
    value such as a link. Relaxed canonicalization changes only whitespace and line ends, so
    for a value without any (and a *marker* without any, standing for it) the canonical body
    is the canonical ``marker.join(parts)`` with the value where the marker stands. The hash
    state up to the first marker is computed once; each call hashes only what follows it,
    some hundred bytes of footer instead of the whole post."""
    if len(parts) == 1:
        fixed = base64.b64encode(hashlib.sha256(canonical_body(parts[0])).digest())
        return lambda value: fixed
    first, *rest = canonical_body(marker.join(parts)).split(marker)
    before = hashlib.sha256(first)

    def body_hash(value: bytes) -> bytes:
        if CANONICALIZED.search(value):
            return base64.b64encode(hashlib.sha256(canonical_body(value.join(parts))).digest())
        hasher = before.copy()
        for part in rest:
            hasher.update(value)
            hasher.update(part)
        return base64.b64encode(hasher.digest())

    return body_hash


def load_signer(config: Config) -> Signer | None:
    """The signer ``[dkim]`` describes, or None; a missing or unreadable key is a
    ConfigError naming it."""
    if config.dkim is None:
        return None
    path = config.resolve(config.dkim.private_key)
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"dkim.private_key: cannot read {path}: {error.strerror or error}"
        ) from None
    try:
        return Signer(pem, config.dkim.selector, signing_domain(config), config.server.domain)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"dkim.private_key: {path} is not a usable RSA key: {error}") from None


def signing_domain(config: Config) -> str:
    assert config.dkim is not None
    return config.dkim.domain or config.server.domain


def generate_key(path: Path, bits: int) -> bytes:
    """Write a new RSA key to *path* (PEM, PKCS#1, mode 0600); returns the public key DER."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def dns_record(selector: str, domain: str, public_der: bytes) -> str:
    """The TXT record to publish, in zone-file form with 255-character strings."""
    value = "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii")
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"
