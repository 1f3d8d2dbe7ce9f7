"""Every text the server writes comes from a Jinja2 template under ``templates/<lang>/``.

A mail template starts with header lines (at least ``Subject:``), a blank line, then the body.
Operators override any template by putting a file of the same name under ``[server]
template_dir``; a template missing in a list's language falls back to English.

Every ``{{ … }}`` shows addresses in Unicode (``mail.wording.for_people``), and every template
has the filters ``when`` (a date in the list's time zone and language), ``plural`` (``{{ n |
plural("день", "дня", "дней") }}``), ``region`` and ``topic`` (names translated by
``templates/translations.toml``); ``language`` is the language being rendered.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from listserv.mail import wording
from listserv.mail.headers import one_line, set_subject

BUILTIN = Path(__file__).resolve().parents[2] / "templates"
# Headers a template may set; anything else in the head of a template is a mistake.
TEMPLATE_HEADERS = {"subject", "content-type"}


def shown(value: Any) -> Any:
    """What ``{{ … }}`` prints: addresses in Unicode, in every template."""
    if isinstance(value, Markup):
        return Markup(wording.for_people(str(value)))
    if isinstance(value, str):
        return wording.for_people(value)
    return value


def zone_of(context: jinja2.runtime.Context) -> str:
    mlist = context.get("mlist")
    return mlist.config.digest.timezone if mlist is not None else "UTC"


def template_dirs(override_dir: Path | None) -> list[Path]:
    """Where templates are looked up: the operator's folder first, then the built-in ones."""
    return [override_dir, BUILTIN] if override_dir else [BUILTIN]


def environment(override_dir: Path | None, **options: Any) -> jinja2.Environment:
    """Templates from *override_dir* first, then the built-in ones; *options* as Jinja2's."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(override_dir)]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        **options,
    )


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.env = environment(
            override_dir,
            autoescape=jinja2.select_autoescape(["html", "htm"], default=False),
            keep_trailing_newline=True,
            finalize=shown,
        )
        self.names = wording.translations(*template_dirs(override_dir))
        self.reason_template = self.env.from_string(
            '{% from language ~ "/_reasons.txt" import reason_text with context %}'
            "{{ reason_text(held, mlist) }}"
        )
        self.env.filters.update(
            when=jinja2.pass_context(
                lambda ctx, moment: wording.local_time(moment, ctx["language"], zone_of(ctx))
            ),
            plural=jinja2.pass_context(
                lambda ctx, count, *forms: wording.plural(count, ctx["language"], *forms)
            ),
            file_size=jinja2.pass_context(
                lambda ctx, size: wording.file_size(size, ctx["language"])
            ),
            file_kind=wording.file_kind,
            region=jinja2.pass_context(lambda ctx, name: self.name_in("regions", name, ctx)),
            topic=jinja2.pass_context(lambda ctx, name: self.name_in("topics", name, ctx)),
        )

    def name_in(self, kind: str, name: str, context: jinja2.runtime.Context) -> str:
        return wording.translate(self.names, kind, name, context["language"])

    def held_reason(self, language: str, held: Any, mlist: Any) -> str:
        """Why *held* was held, in *language*: the ``reason_text`` of ``_reasons.txt``, the
        words the moderation mail uses, for pages that show the same post."""
        return self.reason_template.render(language=language, held=held, mlist=mlist).strip()

    def text(self, language: str, name: str, **context: Any) -> str:
        """Render ``templates/<language>/<name>`` (English when the language lacks it)."""
        template = self.env.get_or_select_template([f"{language}/{name}", f"en/{name}"])
        return template.render(language=language, **context)

    def mail(
        self,
        language: str,
        name: str,
        *,
        sender: str,
        to: str,
        domain: str,
        **context: Any,
    ) -> EmailMessage:
        """A complete UTF-8 message from a mail template: headers, Date, Message-ID."""
        rendered = self.text(language, name, **context)
        head, _, body = rendered.partition("\n\n")
        message = EmailMessage(policy=SMTP)
        message["From"] = sender
        message["To"] = to
        for line in head.splitlines():
            field, _, value = line.partition(":")
            if field.strip().lower() not in TEMPLATE_HEADERS:
                raise jinja2.TemplateError(f"{language}/{name}: unexpected header line {line!r}")
            if field.strip().lower() == "subject":
                set_subject(message, one_line(value))
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(body, charset="utf-8", cte=body_encoding(body))
        # After set_content, which drops every Content-* header set before it.
        message["Content-Language"] = language
        return message


def body_encoding(text: str) -> str:
    """8bit keeps Cyrillic readable in the raw message; long lines need quoted-printable."""
    return "quoted-printable" if any(len(line) > 900 for line in text.splitlines()) else "8bit"


@lru_cache(maxsize=8)
def templates_for(override_dir: str) -> Templates:
    return Templates(Path(override_dir) if override_dir else None)
