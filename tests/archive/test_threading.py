"""Threading on plain headers: In-Reply-To, then References, then the subject in a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from listserv.archive.threading import Headers, subject_key, thread_all

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def post(mid: str, hours: float, subject: str = "", irt: str = "", refs: str = "") -> Headers:
    return Headers(
        mid, irt, tuple(refs.split()), subject_key(subject, "[env]"), T0 + timedelta(hours=hours)
    )


def test_subject_key_drops_prefix_and_reply_markers_in_any_order() -> None:
    assert subject_key("[env] Re: Ответ: Fwd: Water  report", "[env] ") == "water report"
    assert subject_key("Re: [env] RE[2]: Water report", "[env] ") == "water report"
    assert subject_key("Жауап: Су", "[env]") == "су"


def test_in_reply_to_wins_over_references_and_references_from_the_newest() -> None:
    threads = thread_all(
        [
            post("a", 0, "Water"),
            post("b", 1, "Re: Water", irt="a"),
            post("c", 2, "Re: Water", refs="a b"),  # no In-Reply-To: the newest reference
            post("d", 3, "Other", irt="a", refs="a b c"),  # In-Reply-To first
        ]
    )
    assert threads == {"a": (None, "a"), "b": ("a", "a"), "c": ("b", "a"), "d": ("a", "a")}


def test_subject_threads_only_within_the_window_and_only_backwards() -> None:
    threads = thread_all(
        [
            post("a", 0, "Water"),
            post("b", 24 * 10, "Re: Water"),
            post("c", 24 * 45, "Re: Water"),  # 35 days after b: a new thread
            post("d", 24 * 46, "Something else"),
        ]
    )
    assert threads["b"] == ("a", "a")
    assert threads["c"] == (None, "c")
    assert threads["d"] == (None, "d")


def test_a_late_parent_rethreads_its_children() -> None:
    # The reply was archived before the post it answers (an mbox out of order).
    threads = thread_all([post("reply", 0, "Re: x", irt="orig"), post("orig", 5, "x")])
    assert threads == {"orig": (None, "orig"), "reply": ("orig", "orig")}


def test_posts_naming_each_other_make_a_thread_not_a_loop() -> None:
    threads = thread_all([post("a", 0, "x", irt="b"), post("b", 1, "y", irt="a")])
    assert threads["a"] == (None, "a")
    assert threads["b"] == ("a", "a")
