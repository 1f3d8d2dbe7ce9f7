"""Reading configuration values: the error that names a key, and the checks and conversions
every section of ``config.toml`` (and a list's stored settings) goes through."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal

from listserv.mail.addresses import InvalidAddress, normalize


class ConfigError(Exception):
    """A configuration problem, worded for a one-line message naming the key."""


def host_port(value: str, key: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:25`` for IPv6), naming *key* when it is malformed.
    Port 0 means any free port (the server logs the one it got)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{key}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def normalized_addresses(addresses: list[str], key: str) -> list[str]:
    """The addresses normalised as members are stored (lower case, IDNA A-labels)."""
    try:
        return [normalize(a) for a in addresses]
    except InvalidAddress as error:
        raise ConfigError(f"{key}: {error}") from None


def positive(value: float, key: str) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: must be greater than 0, got {value!r}")


def converted(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            choices = " | ".join(str(a) for a in allowed)
            raise ConfigError(f"{key}: expected one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return converted(value, options[0], key)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [converted(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return build(hint, value, key)
    if hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, str) and (not isinstance(value, hint) or isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {'a number' if hint is int else 'text'}, got {value!r}")
    return value


@functools.cache
def type_hints(cls: Any) -> dict[str, Any]:
    # Evaluating the annotations costs a millisecond a class; a page of 1,000 lists builds
    # 1,000 ListConfigs.
    return typing.get_type_hints(cls)


def build(cls: Any, data: dict[str, Any], prefix: str) -> Any:
    hints = type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = converted(value, hints[name], f"{prefix}.{name}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in kwargs:
            raise ConfigError(f"{prefix}.{name}: missing")
    try:
        return cls(**kwargs)
    except ConfigError as error:
        # Dataclass checks name keys within their section; give them the full prefix.
        message = str(error)
        section = prefix.rsplit(".", 1)[-1]
        if message.startswith(section + "."):
            message = prefix + message[len(section) :]
        raise ConfigError(message) from None
