"""The moderation keys of the configuration: defaults and refusals naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from listserv.config import ConfigError, parse_config

PATH = Path("/etc/listserv/config.toml")


def lists(**settings: object) -> dict:
    return {"server": {"domain": "lists.example.org"}, "lists": [{"name": "env", **settings}]}


def test_defaults() -> None:
    config = parse_config(lists(), PATH)
    (env,) = config.lists
    assert (env.max_post_size, env.max_post_recipients) == (5 * 1024 * 1024, 10)
    assert (env.max_posts_per_day, env.max_posts_per_sender_per_day) == (200, 20)
    assert (env.hold_command_like, env.hold_expiry_days, env.hold_reminder_days) == (True, 14, 1)
    assert config.server.moderation_interval == 3600


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_post_size": -1}, "lists.env.max_post_size: must be 0 or more, got -1"),
        (
            {"max_posts_per_day": "many"},
            "lists.env.max_posts_per_day: expected a number, got 'many'",
        ),
        ({"hold_expiry_days": 0}, "lists.env.hold_expiry_days: must be greater than 0, got 0.0"),
        ({"hold_command_like": 1}, "lists.env.hold_command_like: expected true or false, got 1"),
    ],
)
def test_bad_values_name_the_key(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(lists(**settings), PATH)
    assert str(error.value) == message


def test_bad_moderation_interval() -> None:
    data = lists()
    data["server"]["moderation_interval"] = 0
    with pytest.raises(ConfigError, match=r"^server.moderation_interval: must be greater than 0"):
        parse_config(data, PATH)
