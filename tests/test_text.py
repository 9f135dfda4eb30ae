"""Free text from outside: control characters are named, refused or dropped."""

from __future__ import annotations

import pytest

from otc.text import clean_text, control_character, refuse_control


def test_plain_text_passes_unchanged() -> None:
    text = "market moved 12.5 bps — repricing (été)"
    assert control_character(text) is None
    assert refuse_control(text) == text
    assert clean_text(text) == text


@pytest.mark.parametrize(
    ("text", "found"),
    [("a\x00b", "U+0000 at position 1"), ("\x1b[2J", "U+001B at position 0"), ("x\x85", "U+0085")],
)
def test_a_control_character_is_named_and_refused(text: str, found: str) -> None:
    assert found in (control_character(text) or "")
    with pytest.raises(ValueError, match="must not contain control characters"):
        refuse_control(text)


def test_cleaning_drops_control_characters_and_bounds_the_length() -> None:
    assert clean_text("re\x00pri\ncing\t") == "repricing"
    assert clean_text("x" * 600) == "x" * 500
