"""DKIM signing and ARC sealing of everything that leaves.

dkimpy does the parts that are easy to get subtly wrong (header parsing, relaxed
canonicalization, header selection, and for ARC everything); the RSA step, pure Python in
dkimpy and some ten times slower than OpenSSL, is done by ``cryptography``. A DKIM-Signature
is made by concatenation (``SignatureHeader``): its tags change only with t=, once a second.
The body hash is cached by body bytes, so signing one post for many recipients re-signs only
the headers; personalized copies, which differ only by a member's link, are signed from hash
states prepared once per post (``Signer.copy_signer``).
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
# What relaxed canonicalization touches besides field names: a value free of these
# canonicalizes to itself wherever it stands.
CANONICALIZED = re.compile(rb"[ \t\r\n]")
SIGNATURE = b"DKIM-Signature"
PKCS1 = padding.PKCS1v15()
PREHASHED_SHA256 = Prehashed(hashes.SHA256())
B_LINE = 72  # characters of the b= value per header line
# Stands for bh= (44 characters of base64) in the template of a signature's canonical form.
BH_PLACEHOLDER = b"#" * 44


def signed_header_value(  # type: ignore[no-untyped-def]
    key: rsa.RSAPrivateKey,
    fields: list[tuple[bytes, bytes]],
    headers,
    include_headers: list[bytes],
    canon_policy,
    header_name: bytes,
    standardize: bool = False,
) -> bytes:
    """The value of an ARC header: the same steps as dkimpy's DomainSigner.gen_header,
    minus its RSA, on *headers* already canonicalized."""
    value = b"; ".join(b"=".join(x) for x in fields)
    if not standardize:
        value = dkim.fold(value, namelen=len(header_name), linesep=b"\r\n")
    value = dkim.RE_BTAG.sub(b"\\1", value)
    hasher = hashlib.sha256()
    dkim.hash_headers(
        hasher, canon_policy, headers, include_headers, (header_name, b" " + value), {}
    )
    signature = key.sign(hasher.digest(), PKCS1, PREHASHED_SHA256)
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


class SignatureHeader:
    """The DKIM-Signature header (rsa-sha256, relaxed/relaxed) of one key, domain, selector
    and h= list, made by concatenation. Its text up to bh= and the canonical form that is
    hashed around bh= change only with t=, so they are folded and canonicalized (by dkimpy)
    once a second; a signature then costs its hashes, the RSA step and a few joins."""

    def __init__(self, signer: Signer, include: list[bytes]) -> None:
        self.key = signer.key
        self.before_t = b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=%s; t=" % (
            signer.domain,
            signer.selector,
        )
        self.after_t = b"; h=" + b" : ".join(include) + b";"
        # (t=, text up to the bh= value, canonical form before it, after it): one tuple,
        # replaced whole, since the delivery threads share it.
        self.at: tuple[int, bytes, bytes, bytes] = (-1, b"", b"", b"")

    def _pieces(self, now: int) -> tuple[int, bytes, bytes, bytes]:
        at = self.at
        if at[0] != now:
            tags = self.before_t + str(now).encode("ascii") + self.after_t
            text = SIGNATURE + b": " + dkim.fold(tags, namelen=len(SIGNATURE))
            text += b"\r\n bh="
            # Hashed as received with b= empty, and without its CRLF (RFC 6376 3.7).
            ((name, value),) = canonical_headers(text + BH_PLACEHOLDER + b";\r\n b=\r\n")
            before, after = (name + b":" + value.rstrip()).split(BH_PLACEHOLDER)
            at = self.at = (now, text, before, after)
        return at

    def signed(self, hasher: hashlib._Hash, body_hash: bytes) -> bytes:
        """The header, CRLF-terminated, for a message with body hash *body_hash* whose
        signed header fields, canonical and in h= order, *hasher* has taken in."""
        _, text, before, after = self._pieces(int(time.time()))
        hasher.update(before + body_hash + after)
        value = base64.b64encode(self.key.sign(hasher.digest(), PKCS1, PREHASHED_SHA256))
        lines = b"\r\n ".join([value[i : i + B_LINE] for i in range(0, len(value), B_LINE)])
        return text + body_hash + b";\r\n b=" + lines + b"\r\n"


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

    def sign(self, raw: bytes) -> bytes:
        """*raw* with a DKIM-Signature header on top; a message dkimpy cannot read goes out
        unsigned rather than not at all."""
        try:
            # dkimpy is handed the head only: splitting a large body into lines on every
            # call would cost as much as the RSA step.
            head, body = split_head(raw)
            return self.signature(canonical_headers(head), self.body_hash(body)) + raw
        except dkim.DKIMException as error:
            log.warning("not DKIM-signed: %s", error)
            return raw

    def signature(self, headers: list[tuple[bytes, bytes]], body_hash: bytes) -> bytes:
        """The DKIM-Signature header of a message with the relaxed canonical *headers*
        and body hash *body_hash*."""
        include = signed_names(headers)
        hasher = hashlib.sha256(selected(headers, include))
        return SignatureHeader(self, include).signed(hasher, body_hash)

    def copy_signer(self, template: bytes, marker: bytes) -> Callable[[bytes], bytes]:
        """``value → DKIM-Signature header`` of the copy ``value.join(template.split(marker))``,
        for the copies of a post that differ only by a value such as a member's link (in
        headers, body or both). Relaxed canonicalization only changes whitespace, line ends
        and field names, so for a value with none of these the canonical copy is the
        canonical template with the value where the marker stands: the template is parsed,
        canonicalized and hashed up to its first marker once per post, and a copy hashes
        only what follows, from hash states copied. A value that is empty or has whitespace
        is signed the long way. A template dkimpy cannot read gives unsigned copies, as
        ``sign`` does."""
        head, body = split_head(template)
        try:
            headers = canonical_headers(head)
        except dkim.DKIMException as error:
            log.warning("not DKIM-signed: %s", error)
            return lambda value: b""
        include = signed_names(headers)
        header = SignatureHeader(self, include)
        header_state = substituting_hasher(selected(headers, include), marker)
        body_state = substituting_hasher(canonical_body(body), marker)

        def signature(value: bytes) -> bytes:
            if not value or CANONICALIZED.search(value):
                copy = value.join(template.split(marker))
                return self.sign(copy)[: -len(copy)]
            body_hash = base64.b64encode(body_state(value).digest())
            return header.signed(header_state(value), body_hash)

        return signature

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


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header lines, each ending in a line end; body after the blank line) of *raw*."""
    match = HEAD_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()] + b"\r\n", raw[match.end() :]


def canonical_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header lines *head* (each ending in CRLF) in relaxed canonical form."""
    return RELAXED.canonicalize_headers(dkim.rfc822_parse(head)[0])


def canonical_body(body: bytes) -> bytes:
    """*body* in relaxed canonical form (RFC 6376 section 3.4.4), as bh= hashes it."""
    return RELAXED.canonicalize_body(LINE_END.sub(b"\r\n", body))


def signed_names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """h=: the names of SIGNED_HEADERS present among *headers*, and From once more."""
    present = {name for name, _ in headers}
    return [h for h in SIGNED_HEADERS if h in present] + [b"from"]


def selected(headers: list[tuple[bytes, bytes]], include: list[bytes]) -> bytes:
    """The canonical header fields that h= *include* names, in its order, as hashed."""
    return b"".join(name + b":" + value for name, value in dkim.select_headers(headers, include))


def substituting_hasher(template: bytes, marker: bytes) -> Callable[[bytes], hashlib._Hash]:
    """``value → SHA-256 state`` of *template* with *value* wherever *marker* stands; what
    comes before the first marker is hashed once."""
    first, *rest = template.split(marker)
    before = hashlib.sha256(first)

    def state(value: bytes) -> hashlib._Hash:
        hasher = before.copy()
        for part in rest:
            hasher.update(value)
            hasher.update(part)
        return hasher

    return state


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
