"""How long building one digest issue takes, per format (no database, no network).

Usage: python bench/digest_build.py [POSTS]   (default 30, the default max_messages)
"""

import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listserv.config import ListConfig
from listserv.digests.format import Issue
from listserv.digests.issues import BUILDERS
from listserv.mail.codec import parse, to_bytes
from listserv.mail.templates import Templates
from listserv.store.lists import MailList


def post(i: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Участник {i} <member{i}@ngo.example.kz>"
    message["Subject"] = f"Обсуждение {i}: водные ресурсы"
    message["Message-ID"] = f"<{i}@ngo.example.kz>"
    text = "Уровень воды в Арале снова упал, данные во вложении.\n" * 40
    message.set_content(text, charset="koi8-r" if i % 2 else "utf-8")
    if i % 3 == 0:
        message.add_alternative(f"<p>{text}</p><script>x()</script>", subtype="html")
    return message


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    mlist = MailList(1, ListConfig(name="environment-kz", language="ru"), "lists.example.org")
    posts = [parse(to_bytes(post(i))) for i in range(count)]
    issue = Issue(mlist, 1, 1, datetime.now(UTC), posts)
    templates = Templates()
    for mode, build in BUILDERS.items():
        rounds = 20
        start = time.perf_counter()
        for _ in range(rounds):
            size = len(to_bytes(build(issue, templates)))
        elapsed = (time.perf_counter() - start) / rounds
        print(
            f"{mode:<7} {count} posts: {elapsed * 1000:7.1f} ms per issue, {size / 1024:6.0f} KiB"
        )


if __name__ == "__main__":
    main()
