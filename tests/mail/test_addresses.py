"""Addresses: normalising (IDNA A-labels) and reading list addresses."""

from __future__ import annotations

import pytest

from listserv.mail.addresses import InvalidAddress, Target, normalize, parse_recipient

DOMAIN = "lists.example.org"
NAMES = {"environment-kz", "gender-kg"}


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("user@мысал.қаз", "user@xn--80awbu3c.xn--80ao21a"),
        ("User@Пример.РФ", "user@xn--e1afmkfd.xn--p1ai"),
        ("<a@X.Example>", "a@x.example"),
        ("a@x.example.", "a@x.example"),
        ("first.last+tag@ngo.example.kz", "first.last+tag@ngo.example.kz"),
        ("a@xn--80awbu3c.xn--80ao21a", "a@xn--80awbu3c.xn--80ao21a"),
    ],
)
def test_normalize(address: str, expected: str) -> None:
    assert normalize(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "a",
        "a@b",
        "a b@c.example",
        "@x.example",
        "a@",
        "a@x..example",
        "a@-x.example",
        ".a@x.example",
        "a..b@x.example",
        "a@x_y.example",
        "пользователь@x.example",
        "a@x.example\r\nBcc: b@y.example",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize(address)


@pytest.mark.parametrize(
    ("address", "target"),
    [
        (f"environment-kz@{DOMAIN}", Target("environment-kz", "post")),
        (f"Environment-KZ@{DOMAIN.upper()}", Target("environment-kz", "post")),
        (f"environment-kz-request@{DOMAIN}", Target("environment-kz", "request")),
        (f"environment-kz-subscribe@{DOMAIN}", Target("environment-kz", "join")),
        (f"environment-kz-unsubscribe@{DOMAIN}", Target("environment-kz", "leave")),
        (f"gender-kg-owner@{DOMAIN}", Target("gender-kg", "owner")),
        (f"gender-kg-bounces+a=x.example@{DOMAIN}", Target("gender-kg", "bounces", "a=x.example")),
        (f"gender-kg-confirm+abc@{DOMAIN}", Target("gender-kg", "confirm", "abc")),
    ],
)
def test_list_addresses(address: str, target: Target) -> None:
    assert parse_recipient(address, DOMAIN, NAMES) == target


@pytest.mark.parametrize(
    "address",
    [
        f"nosuchlist@{DOMAIN}",
        f"environment-kz-admin@{DOMAIN}",
        f"environment-kz+x@{DOMAIN}",
        f"environment-kz-request+x@{DOMAIN}",
        f"environment-kz-confirm@{DOMAIN}",
        "environment-kz@other.example.org",
        f"environment-kz@sub.{DOMAIN}",
        "victim@gmail.com",
        "not an address",
    ],
)
def test_other_addresses_are_not_ours(address: str) -> None:
    assert parse_recipient(address, DOMAIN, NAMES) is None
