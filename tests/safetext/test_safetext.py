"""safetext: outside text made storable on both engines, and log lines that stay one line."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.runtime import configure_logging
from safetext import SafeLogFormatter, clean_json, clean_text, printable

#: Every code point, lone surrogates included: what a JSON body's \u escapes can carry.
any_text = st.text(alphabet=st.characters(codec=None), max_size=80)


@pytest.mark.parametrize(
    ("given_text", "single_line", "expected"),
    [
        ("PARK", False, "PARK"),
        ("a\x00b", False, "ab"),
        ("\x01\x02\x07\x08\x0b\x0c\x0e\x1b\x1f\x7f", False, ""),
        ("line\r\nnext\ttab", False, "line\r\nnext\ttab"),
        ("line\r\nnext\ttab", True, "linenexttab"),
        ("\ud800", False, "\ufffd"),
        ("x\udfffy\udbff\udc00", False, "x\ufffdy\ufffd\ufffd"),
        ("Élke week 🌳 مرحبا", False, "Élke week 🌳 مرحبا"),
        # C1 controls and separators are text PostgreSQL stores; logs escape them.
        ("\x85\u2028", False, "\x85\u2028"),
    ],
)
def test_clean_text(given_text: str, single_line: bool, expected: str) -> None:
    assert clean_text(given_text, single_line=single_line) == expected


@given(any_text, st.one_of(st.none(), st.integers(min_value=0, max_value=40)), st.booleans())
def test_clean_text_is_storable_short_enough_and_stable(
    value: str, limit: int | None, single_line: bool
) -> None:
    cleaned = clean_text(value, limit, single_line=single_line)
    cleaned.encode("utf-8")  # no lone surrogate left: both drivers encode UTF-8
    assert "\x00" not in cleaned
    assert limit is None or len(cleaned) <= limit
    assert clean_text(cleaned, limit, single_line=single_line) == cleaned


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [*value, *(s for item in value.values() for s in _strings(item))]
    return []


@given(json_values)
def test_clean_json_cleans_every_string_and_keeps_the_rest(value: Any) -> None:
    cleaned = clean_json(value)
    assert all(clean_text(s) == s for s in _strings(cleaned))
    if not any(clean_text(s) != s for s in _strings(value)):
        assert cleaned == value


def test_keys_that_become_equal_keep_the_later_value_in_the_first_place() -> None:
    cleaned = clean_json({"a\x00": 1, "b": 2, "a": 3})
    assert cleaned == {"a": 3, "b": 2}
    assert list(cleaned) == ["a", "b"]


def test_clean_json_reads_any_depth() -> None:
    deep: Any = "\x00end"
    for _ in range(50_000):
        deep = [{"k": deep}]
    cleaned = clean_json(deep)
    for _ in range(50_000):
        cleaned = cleaned[0]["k"]
    assert cleaned == "end"


@given(any_text)
def test_printable_is_one_line_of_printable_text(value: str) -> None:
    shown = printable(value)
    shown.encode("utf-8")
    assert len(shown.splitlines()) <= 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown)


def _formatted(handler: logging.Handler, *args: Any, exc: bool = False) -> str:
    log = logging.getLogger("tests.safetext")
    log.propagate = False
    log.addHandler(handler)
    try:
        if exc:
            try:
                raise ValueError("bad\x1b[2J value")
            except ValueError:
                log.exception(*args)
        else:
            log.warning(*args)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert isinstance(handler, logging.StreamHandler)
    stream = handler.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def test_log_lines_never_carry_raw_control_characters() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(SafeLogFormatter("%(levelname)s %(message)s"))
    forged = "PARK\n2026-12-01 INFO bot.service: all is well\x1b[2J\r\x00\ud800"
    text = _formatted(handler, "ignored: %s", forged)
    assert text == (
        "WARNING ignored: PARK\\n2026-12-01 INFO bot.service: all is well\\x1b[2J\\r\\x00\\ud800\n"
    )


def test_a_traceback_keeps_its_lines_but_escapes_the_rest() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(SafeLogFormatter("%(message)s"))
    text = _formatted(handler, "failed on %s", "x\x1b", exc=True)
    assert text.startswith("failed on x\\x1b\nTraceback (most recent call last):\n")
    assert "ValueError: bad\\x1b[2J value" in text
    assert "\x1b" not in text


def test_configure_logging_installs_the_safe_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.root, "handlers", [handler])
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    configure_logging(Config())
    assert isinstance(handler.formatter, SafeLogFormatter)
    assert "\\x1b" in _formatted(handler, "%s", "\x1b")


@settings(max_examples=50)
@given(any_text)
def test_safe_formatter_never_fails_on_any_text(value: str) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(SafeLogFormatter("%(message)s"))
    text = _formatted(handler, "got %s", value)
    text.encode("utf-8")
    assert text.count("\n") == 1
