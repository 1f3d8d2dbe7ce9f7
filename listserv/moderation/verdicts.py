"""Reading a decision from a reply: ``approve``, ``approve always``, ``reject [reason]``,
``discard`` (moderators) and ``withdraw`` (the poster), in English, Russian or Kazakh.

The decision is the first line the writer typed (quotes and blank lines before it are
skipped); for a rejection the rest of that line and of its paragraph is the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from listserv.mail.text import first_paragraph

Action = Literal["approve", "reject", "discard", "withdraw"]

WORDS: dict[Action, tuple[str, ...]] = {
    "approve": (
        "approve",
        "accept",
        "одобрить",
        "одобряю",
        "принять",
        "утвердить",
        "мақұлдау",
        "мақұлдаймын",
        "бекіту",
        "қабылдау",
    ),
    "reject": (
        "reject",
        "отклонить",
        "отклоняю",
        "қабылдамау",
        "бас тарту",
    ),
    "discard": (
        "discard",
        "delete",
        "удалить",
        "удаляю",
        "жою",
        "өшіру",
    ),
    "withdraw": (
        "withdraw",
        "cancel",
        "отозвать",
        "отзываю",
        "отменить",
        "қайтарып алу",
        "кері қайтарып алу",
        "болдырмау",
    ),
}
ALWAYS = ("always", "всегда", "әрқашан", "әрдайым")
MAX_REASON = 2000


@dataclass(frozen=True)
class Verdict:
    action: Action
    always: bool = False
    reason: str = ""


def _pattern() -> re.Pattern[str]:
    phrases = sorted(
        ((word, action) for action, words in WORDS.items() for word in words),
        key=lambda pair: -len(pair[0]),
    )
    alternatives = "|".join(
        f"(?P<{action}_{i}>{re.escape(word)})" for i, (word, action) in enumerate(phrases)
    )
    return re.compile(rf"^(?:{alternatives})(?!\w)[\s:,.!-]*(?P<rest>.*)$", re.IGNORECASE)


PATTERN = _pattern()


def read_verdict(text: str) -> Verdict | None:
    """The decision a reply's text makes, or None when its first line is not one."""
    paragraph = first_paragraph(text)
    if not paragraph:
        return None
    # Kazakh puts the adverb first: "әрқашан мақұлдау" is "approve always".
    first_word, _, after = paragraph[0].partition(" ")
    always_first = first_word.strip(".,!").casefold() in ALWAYS and bool(after.strip())
    match = PATTERN.match(after.strip() if always_first else paragraph[0])
    if match is None:
        return None
    group = next(name for name, value in match.groupdict().items() if value and name != "rest")
    action: Action = group.rsplit("_", 1)[0]  # type: ignore[assignment]
    if always_first and action != "approve":
        return None
    rest = match.group("rest").strip()
    if action == "approve":
        first = rest.split(maxsplit=1)[0].strip(".,!").casefold() if rest else ""
        return Verdict("approve", always=always_first or first in ALWAYS)
    if action == "reject":
        reason = "\n".join([rest, *paragraph[1:]] if rest else paragraph[1:])
        return Verdict("reject", reason=reason.strip()[:MAX_REASON])
    return Verdict(action)
