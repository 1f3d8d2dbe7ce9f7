"""Reading email commands: which commands a mail to ``NAME-request`` carries.

Pure functions of a message: the text is taken from the Subject (as a first command line,
without ``Re:``/``Fwd:``) and the body (plain text, else HTML turned into text), decoded from
whatever charset the sender used. Reading stops at ``end``, at a signature (``-- ``), at quoted
text, or after a few lines that are not commands, so a whole letter is never taken for orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage

from listserv.mail.codec import subject_of
from listserv.mail.headers import RESPONSE_MARKERS
from listserv.mail.text import plain_text

# Each command and the words (English, Russian, Kazakh) that name it, lower-case.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "help": ("help", "помощь", "справка", "көмек", "анықтама"),
    "lists": ("lists", "списки", "тізімдер", "таратылымдар"),
    "info": ("info", "информация", "инфо", "ақпарат"),
    "subscribe": ("subscribe", "join", "подписаться", "подписка", "жазылу"),
    "unsubscribe": ("unsubscribe", "leave", "отписаться", "отписка", "жазылымнан шығу"),
    # "set delivery digest", "режим дайджест", "алу тәсілі дайджест".
    "set": ("set", "режим", "алу тәсілі", "тәсіл"),
    "confirm": ("confirm", "подтвердить", "растау"),
    "end": ("end", "stop", "конец", "стоп", "соңы"),
}
# Longest phrase first, so "жазылымнан шығу" wins over a shorter word it starts with.
PHRASES = sorted(
    ((phrase, name) for name, words in KEYWORDS.items() for phrase in words),
    key=lambda item: -len(item[0]),
)
# Lines that are not commands tolerated before reading stops (a greeting, a stray "thanks").
MAX_OTHER_LINES = 5
# Commands taken from one message at most: a mail is not a batch job.
MAX_COMMANDS = 10
MAX_LINE = 200
# Delivery modes as members write them after "subscribe" or "set delivery", in each language.
MODE_WORDS: dict[str, str] = {
    "regular": "regular",
    "обычный": "regular",
    "әдеттегі": "regular",
    "digest": "digest",
    "дайджест": "digest",
    "plain": "plain",
    "текст": "plain",
    "мәтін": "plain",
    "nomail": "nomail",
    "пауза": "nomail",
    "үзіліс": "nomail",
}
# "Re: Подтвердите подписку (подтвердить TOKEN)": a confirmation's Subject names its token
# among words in the list's language; a reply to it confirms wherever the words put it.
SUBJECT_CONFIRM = re.compile(
    r"(?<!\w)(?:confirm|подтвердить|растау)\s+([a-z2-7]{20,64})(?![\w-])", re.IGNORECASE
)
# What a reply quotes of a command line at most: enough to recognise it, too little to carry
# a message of someone else's through our replies.
MAX_QUOTE = 60


@dataclass(frozen=True)
class Command:
    """One command line: its name (``subscribe``), its arguments and the line as a reply
    may quote it (``quotable``)."""

    name: str
    args: tuple[str, ...] = ()
    line: str = ""


@dataclass
class Commands:
    """What a message asks: its commands in order, and the lines that were not commands."""

    commands: list[Command] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def read_command(line: str) -> Command | None:
    """The command a line names, or None; the keyword is case-insensitive, arguments are
    kept as written (tokens are case-sensitive)."""
    text = " ".join(line.split())
    lowered = text.lower()
    for phrase, name in PHRASES:
        if lowered == phrase or lowered.startswith(phrase + " "):
            return Command(name, tuple(text[len(phrase) :].split()), quotable(text))
    return None


def mode_of(word: str) -> str | None:
    """The delivery mode a word names (``дайджест`` → ``digest``), or None."""
    return MODE_WORDS.get(word.lower())


def subject_command(subject: str) -> Command | None:
    """The command a Subject gives: a confirmation token anywhere in it, else a command at
    its start."""
    text = RESPONSE_MARKERS.sub("", subject).strip()
    found = SUBJECT_CONFIRM.search(text)
    if found is not None:
        return Command("confirm", (found.group(1),), f"confirm {found.group(1)}")
    return read_command(text)


def quotable(text: str) -> str:
    """A command line as a reply may quote it: one line, printable, short."""
    shown = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    return shown if len(shown) <= MAX_QUOTE else shown[: MAX_QUOTE - 1] + "…"


def is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def parse_commands(subject: str, body: str) -> Commands:
    """The commands of a message with this Subject and body text."""
    found = Commands()
    first = subject_command(subject)
    # A Subject that is no command ("Question") is ignored, not counted against the body.
    if first is not None:
        if first.name == "end":
            return found
        found.commands.append(first)
    for raw_line in body.splitlines():
        line = raw_line.strip()
        if raw_line.rstrip("\r") in ("-- ", "--") or is_quote(raw_line):
            break
        if not line:
            continue
        command = read_command(line)
        if command is None:
            found.unknown.append(line[:MAX_LINE])
            if len(found.unknown) >= MAX_OTHER_LINES:
                break
            continue
        if command.name == "end":
            break
        # A reply quoting "confirm TOKEN" in both Subject and body means it once.
        if all((c.name, c.args) != (command.name, command.args) for c in found.commands):
            found.commands.append(command)
        if len(found.commands) >= MAX_COMMANDS:
            break
    return found


def message_commands(message: EmailMessage) -> Commands:
    return parse_commands(subject_of(message), plain_text(message))
