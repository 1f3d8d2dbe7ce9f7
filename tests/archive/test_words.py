"""The words the search index holds: the same stem for the forms of a word, in Russian and
English, without case or accents; Kazakh and Cyrillic letters kept as they are."""

from listserv.archive.search import highlight
from listserv.archive.words import stems


def test_word_forms_share_a_stem() -> None:
    assert len(set(stems("водный водные водных"))) == 1
    assert len(set(stems("ресурсы ресурсов Ресурс"))) == 1
    assert len(set(stems("reports reporting REPORT"))) == 1
    assert stems("Ёлка ёлки") == stems("елка елки")
    assert stems("Café naïve") == stems("cafe naive")
    assert stems("й") == ["й"] and stems("Қазақстан")[0].startswith("қазақ")
    assert stems("snake_case") == ["snake", "case"]


def test_highlight_marks_every_form_and_escapes_the_rest() -> None:
    shown = highlight("<b>Водные</b> ресурсы: водный баланс & прочее.", "водный")
    assert str(shown) == (
        "&lt;b&gt;<mark>Водные</mark>&lt;/b&gt; ресурсы: <mark>водный</mark> баланс &amp; прочее."
    )
    long = highlight(" ".join(["слово"] * 40 + ["водой"] + ["конец"] * 40), "вода", width=6)
    assert str(long) == "… слово слово <mark>водой</mark> конец конец конец …"
