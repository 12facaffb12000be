"""The schema's "visible text" pattern and the server's blank rule are one rule."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from haunt_fm.pipeline.common import FORMAT_CHARS, VISIBLE, is_blank


def test_the_format_characters_are_unicodes_category_cf() -> None:
    listed = {
        cp for cp in range(sys.maxunicode + 1) if re.fullmatch(f"[{FORMAT_CHARS}]", chr(cp)) is not None
    }
    assert listed == {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}


@pytest.mark.parametrize(
    "text", ["a", " ", "", "\u200b", "\u202eevil", "\u202e", "\ufeff x", "\U000e0001", "\u00ad", " \t\n", "é"]
)
def test_the_pattern_matches_exactly_the_text_that_is_not_blank(text: str) -> None:
    assert (re.search(VISIBLE, text) is None) == is_blank(text)
