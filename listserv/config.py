"""Load and validate ``config.toml``.

Every section is a frozen dataclass; the loader refuses unknown keys and values of the wrong
type or outside their allowed set, naming the key (``lists.environment-kz.posting``) so an
operator can fix it from one line of output.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from listserv.config_values import (
    ConfigError,
    build,
    host_port,
    normalized_addresses,
    positive,
)
from listserv.mail.addresses import InvalidAddress, normalize

DEFAULT_CONFIG = "config.toml"
# The languages the server writes in (templates/<language>/).
LANGUAGES = ("en", "ru", "kk")
LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9._]*(?:-[a-z0-9._]+)*$")
WEB_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$")
RESERVED_SUFFIXES = (
    "-request",
    "-join",
    "-subscribe",
    "-leave",
    "-unsubscribe",
    "-confirm",
    "-owner",
    "-bounces",
)


@dataclass(frozen=True)
class ServerConfig:
    domain: str
    listen: str = "127.0.0.1:8025"
    protocol: Literal["smtp", "lmtp"] = "smtp"
    max_message_size: int = 10 * 1024 * 1024
    max_recipients: int = 100
    idle_timeout: float = 300.0
    # Seconds between a serve process's heartbeats; work claimed by a process silent for three
    # heartbeats is taken over by the others (a process killed with -9).
    heartbeat: float = 10.0
    template_dir: str = ""
    # Mail the server writes to one address on its own account (command replies, notices)
    # per day at most, so forged senders cannot turn it into a spam cannon.
    max_autoreplies_per_day: int = 10
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # How long a subscription (or unsubscription, delivery change) asked for by mail waits
    # for the address to confirm it.
    confirmation_expiry_days: float = 3.0
    # Seconds between runs of the moderation schedule (expiring held posts, reminders).
    moderation_interval: float = 3600.0
    # Seconds between checks whether a list's digest is due (posts also wake the check).
    digest_check_interval: float = 60.0
    # Days after which processed messages, finished outgoing mail, used or expired tokens and
    # member events are deleted (housekeeping.py), and seconds between housekeeping runs.
    retention_days: float = 30.0
    housekeeping_interval: float = 3600.0
    # MTAs in front of intake (networks or addresses) whose XFORWARD, or failing that whose
    # Received: header, names the real client for SPF; nobody else's is believed.
    trusted_relays: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    # Bytes of the header block, and of one header field, a message may carry (more is
    # refused at DATA): every stage parses headers, in time that grows with their square.
    max_header_size: int = 65536
    max_header_field_size: int = 32768
    # Seconds the router gives one message before it goes on with the others beside it.
    message_time_budget: float = 30.0
    # SMTP/LMTP sessions served at once; more are told to come back later (421).
    max_connections: int = 100
    # Who gets mail to postmaster@domain (RFC 5321 4.5.1); empty: every list's owners.
    postmaster: list[str] = field(default_factory=list)
    # Seconds between runs of bounce upkeep (expiring probes and scores, reminding and
    # removing disabled members), run by one process at a time.
    bounce_upkeep_interval: float = 3600.0
    # Processes that route and deliver beside the one that takes mail; 0: one process does
    # everything. Each is a Python interpreter of its own, so each can use a core.
    workers: int = 0

    def __post_init__(self) -> None:
        try:
            # List addresses are matched in the A-label form recipients are normalised to.
            domain = normalize(f"list@{self.domain}").partition("@")[2]
        except InvalidAddress:
            raise ConfigError(
                f"server.domain: expected a domain name, got {self.domain!r}"
            ) from None
        object.__setattr__(self, "domain", domain)
        host_port(self.listen, "server.listen")
        positive(self.max_message_size, "server.max_message_size")
        positive(self.max_recipients, "server.max_recipients")
        positive(self.idle_timeout, "server.idle_timeout")
        positive(self.heartbeat, "server.heartbeat")
        positive(self.confirmation_expiry_days, "server.confirmation_expiry_days")
        positive(self.moderation_interval, "server.moderation_interval")
        positive(self.digest_check_interval, "server.digest_check_interval")
        positive(self.retention_days, "server.retention_days")
        positive(self.housekeeping_interval, "server.housekeeping_interval")
        for relay in self.trusted_relays:
            try:
                ipaddress.ip_network(relay, strict=False)
            except ValueError:
                raise ConfigError(
                    f"server.trusted_relays: expected an IP address or network, got {relay!r}"
                ) from None
        positive(self.max_header_size, "server.max_header_size")
        positive(self.max_header_field_size, "server.max_header_field_size")
        positive(self.message_time_budget, "server.message_time_budget")
        positive(self.max_connections, "server.max_connections")
        if self.workers < 0:
            raise ConfigError(f"server.workers: must be 0 or more, got {self.workers!r}")
        object.__setattr__(
            self, "postmaster", normalized_addresses(self.postmaster, "server.postmaster")
        )
        positive(self.bounce_upkeep_interval, "server.bounce_upkeep_interval")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/listserv.db"
    # Seconds to wait for a locked SQLite database or a PostgreSQL connection before giving
    # up (intake then answers 451 and the sender retries).
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ConfigError(
                f"database.url: expected sqlite:///PATH or postgresql+psycopg://…, got {self.url!r}"
            )
        positive(self.timeout, "database.timeout")


@dataclass(frozen=True)
class DeliveryConfig:
    smarthost: str = "127.0.0.1:25"
    # A directory instead of a smarthost: each delivered message is written there as a file
    # with its envelope, for trying the server on a machine without an MTA.
    outbox: str = ""
    max_recipients: int = 500
    connections: int = 4
    verp: bool = False
    timeout: float = 60.0
    # Seconds to wait before each retry of a temporary failure; the last is repeated until
    # ``give_up_after`` seconds have passed since the first attempt.
    retry_schedule: list[float] = field(
        default_factory=lambda: [60.0, 300.0, 900.0, 3600.0, 4 * 3600.0]
    )
    give_up_after: float = 4 * 24 * 3600.0

    def __post_init__(self) -> None:
        if not self.outbox:
            host_port(self.smarthost, "delivery.smarthost")
        positive(self.max_recipients, "delivery.max_recipients")
        positive(self.connections, "delivery.connections")
        positive(self.timeout, "delivery.timeout")
        if not self.retry_schedule or any(s < 0 for s in self.retry_schedule):
            raise ConfigError("delivery.retry_schedule: expected a list of seconds >= 0")


@dataclass(frozen=True)
class DnsConfig:
    nameservers: list[str] = field(default_factory=list)
    timeout: float = 3.0

    def __post_init__(self) -> None:
        positive(self.timeout, "dns.timeout")
        for i, server in enumerate(self.nameservers):
            if ":" in server:
                host_port(server, f"dns.nameservers[{i}]")


@dataclass(frozen=True)
class DkimConfig:
    selector: str
    private_key: str
    domain: str = ""

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", self.selector):
            raise ConfigError(f"dkim.selector: not a DNS label: {self.selector!r}")


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"
    base_url: str = ""
    secret_file: str = "keys/web.secret"
    # May moderate and manage every list on the portal.
    admins: list[str] = field(default_factory=list)
    # False when ``listserv web`` processes run the portal: ``serve`` then keeps [web] for the
    # links in its mail but serves no pages, so no crowd of readers can slow its mail down.
    embedded: bool = True

    def __post_init__(self) -> None:
        host_port(self.listen, "web.listen")
        object.__setattr__(self, "admins", normalized_addresses(self.admins, "web.admins"))
        # The URL goes into every member's List-Unsubscribe header and footer as it is.
        if self.base_url and not WEB_BASE_URL.match(self.base_url):
            raise ConfigError(
                f"web.base_url: expected http(s)://host[/path] without query, got {self.base_url!r}"
            )


@dataclass(frozen=True)
class DigestConfig:
    frequency: Literal["daily", "weekly", "monthly"] = "daily"
    max_messages: int = 30
    # An issue goes out at once when its posts (as distributed) reach this many bytes.
    max_size: int = 100 * 1024
    # When scheduled issues go out, in the list's time zone: at ``hour`` every day, on
    # ``weekday`` every week, on day ``day`` of every month.
    hour: int = 0
    weekday: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "monday"
    day: int = 1
    timezone: str = "UTC"
    # Seconds between issues instead of the calendar schedule (e.g. 43200: twice a day); 0 = use
    # ``frequency``.
    interval: float = 0.0

    def __post_init__(self) -> None:
        positive(self.max_messages, "digest.max_messages")
        positive(self.max_size, "digest.max_size")
        if not 0 <= self.hour <= 23:
            raise ConfigError(f"digest.hour: expected 0 to 23, got {self.hour!r}")
        if not 1 <= self.day <= 28:
            raise ConfigError(f"digest.day: expected 1 to 28, got {self.day!r}")
        if self.interval < 0:
            raise ConfigError(f"digest.interval: must be 0 or more, got {self.interval!r}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"digest.timezone: unknown time zone {self.timezone!r}") from None


@dataclass(frozen=True)
class ListConfig:
    name: str
    title: str = ""
    # The title in other languages, for lists shown in another list's language (the
    # "lists" reply, the web directory): { ru = "…", kk = "…", en = "…" }.
    titles: dict[str, str] = field(default_factory=dict)
    region: str = ""
    topic: str = ""
    description: str = ""
    language: Literal["en", "ru", "kk"] = "en"
    posting: Literal["open", "members", "moderated", "announce"] = "members"
    nonmember_action: Literal["hold", "reject", "discard"] = "hold"
    moderators: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    subject_prefix: str | None = None
    reply_to: Literal["poster", "list"] = "poster"
    footer: bool = True
    advertised: bool = True
    digest: DigestConfig = field(default_factory=DigestConfig)
    dmarc: Literal["munge", "wrap", "none"] = "munge"
    hold_expiry_days: float = 14.0
    bounce_threshold: float = 5.0
    # Apply the `dmarc` rewrite to every post, whatever the poster's domain publishes.
    dmarc_always: bool = False
    # Hold posts that fail DMARC from a domain publishing p=reject (likely forgeries).
    dmarc_hold_failures: bool = False
    # Safety holds, whoever the sender (0 turns a limit off): posts larger than this many
    # bytes, with more explicit To/Cc recipients, beyond a number of posts a day to the list
    # or from one sender, and posts that look like commands ("unsubscribe") sent to the list.
    max_post_size: int = 5 * 1024 * 1024
    max_post_recipients: int = 10
    max_posts_per_day: int = 200
    max_posts_per_sender_per_day: int = 20
    hold_command_like: bool = True
    # Days between reminders to moderators of what is pending (0: no reminders).
    hold_reminder_days: float = 1.0
    # Bounce scoring (README "Bounces"): a permanent (5.x.x) bounce adds the hard weight, a
    # temporary failure given up on (4.x.x) the soft one, at most once per score interval.
    bounce_hard_weight: float = 1.0
    bounce_soft_weight: float = 0.5
    bounce_score_interval_days: float = 1.0
    bounce_reset_days: float = 7.0
    bounce_probe_days: float = 3.0
    bounce_warnings: int = 3
    bounce_warning_interval_days: float = 7.0
    # A spam complaint (ARF feedback report) unsubscribes the member who made it.
    feedback_unsubscribe: bool = True
    # Who may read the list's archive on the web: anyone, signed-in members, or nobody (posts
    # are not kept at all).
    archive: Literal["public", "members", "none"] = "members"

    def __post_init__(self) -> None:
        if not LIST_NAME.match(self.name) or self.name.endswith(RESERVED_SUFFIXES):
            raise ConfigError(
                f"lists.name: {self.name!r} is not a valid list name "
                "(lower-case letters, digits, '.', '_' and '-', not ending in a reserved suffix)"
            )
        if self.subject_prefix is None:
            object.__setattr__(self, "subject_prefix", f"[{self.name}] ")
        key = f"lists.{self.name}"
        for role in ("moderators", "owners"):
            addresses = normalized_addresses(getattr(self, role), f"{key}.{role}")
            object.__setattr__(self, role, addresses)
        for language, text in self.titles.items():
            if language not in LANGUAGES or not isinstance(text, str):
                raise ConfigError(
                    f'{key}.titles: expected {{ ru = "…", kk = "…", en = "…" }}, '
                    f"got {language} = {text!r}"
                )
        positive(self.hold_expiry_days, f"{key}.hold_expiry_days")
        positive(self.bounce_threshold, f"{key}.bounce_threshold")
        for name in (
            "max_post_size",
            "max_post_recipients",
            "max_posts_per_day",
            "max_posts_per_sender_per_day",
            "hold_reminder_days",
            "bounce_hard_weight",
            "bounce_soft_weight",
            "bounce_score_interval_days",
            "bounce_reset_days",
            "bounce_probe_days",
            "bounce_warnings",
            "bounce_warning_interval_days",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name}: must be 0 or more, got {getattr(self, name)!r}")

    def settings(self) -> dict[str, Any]:
        """The list's settings as plain data, as stored in the database."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    dkim: DkimConfig | None = None
    web: WebConfig | None = None
    lists: list[ListConfig] = field(default_factory=list)

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's directory."""
        return (self.path.parent / relative).resolve()

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the config file."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Build a validated :class:`Config` from TOML data read from *path*."""
    sections = {f.name for f in dataclasses.fields(Config)} - {"path"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section")
    if "server" not in data:
        raise ConfigError("server: missing section")
    raw_lists = data.get("lists", [])
    if not isinstance(raw_lists, list):
        raise ConfigError("lists: expected [[lists]] tables")
    lists: list[ListConfig] = []
    for i, entry in enumerate(raw_lists):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"lists[{i}].name: missing")
        lists.append(build(ListConfig, entry, f"lists.{entry['name']}"))
    names = [lst.name for lst in lists]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"lists.{sorted(duplicates)[0]}: declared twice")
    parts: dict[str, Any] = {}
    for name, cls in (
        ("server", ServerConfig),
        ("database", DatabaseConfig),
        ("delivery", DeliveryConfig),
        ("dns", DnsConfig),
        ("dkim", DkimConfig),
        ("web", WebConfig),
    ):
        if name in data:
            if not isinstance(data[name], dict):
                raise ConfigError(f"{name}: expected a table")
            parts[name] = build(cls, data[name], name)
    return Config(path=path, lists=lists, **parts)


def find_config(explicit: str | None) -> Path:
    """``--config PATH``, else ``$LISTSERV_CONFIG``, else ``./config.toml``."""
    return Path(explicit or os.environ.get("LISTSERV_CONFIG") or DEFAULT_CONFIG).absolute()


def load_config(path: Path) -> Config:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, path)
