"""Small pieces the commands' tables share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.table import Table
    from rich.text import Text

    from haunt_fm.pipeline.profiles.schemas import ProfileTasteOut


def when(value: datetime | str | None, *, never: str = "never") -> str:
    """A time as the reader's local `YYYY-MM-DD HH:MM`; `never` when there is none."""
    if value is None or value == "":
        return never
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def size(value: int | None) -> str:
    """Bytes as `12.3 MB`; `?` when unknown."""
    if value is None:
        return "?"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value} B"


def cell(value: object) -> Text:
    """A table cell shown as it is: a title such as "[Live] Song" is text, not rich markup."""
    from rich.text import Text

    return Text("" if value is None else str(value))


def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table with a left-aligned title; `right` names the right-aligned (numeric) columns."""
    from rich.table import Table

    out = Table(title=cell(title) if title else None, title_justify="left")
    for column in columns:
        out.add_column(column, justify="right" if column in right else "left")
    return out


def taste_lines(tastes: Iterable[ProfileTasteOut]) -> list[str]:
    """A profile's tastes, heaviest first: label, share of the listening, tracks, top artists."""
    lines = []
    for t in tastes:
        artists = f" ({', '.join(t.top_artists)})" if t.top_artists else ""
        lines.append(
            f"taste {t.index + 1}: {t.label}, {t.weight:.0%} of the listening, {t.tracks} track(s){artists}"
        )
    return lines
