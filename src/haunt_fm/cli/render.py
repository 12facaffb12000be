"""Small pieces the commands' tables share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


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


def cell(value: object) -> Text:
    """A table cell shown as it is: a title such as "[Live] Song" is text, not rich markup."""
    from rich.text import Text

    return Text("" if value is None else str(value))


def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table with a left-aligned title; `right` names the right-aligned (numeric) columns."""
    from rich.table import Table

    out = Table(title=cell(title), title_justify="left")
    for column in columns:
        out.add_column(column, justify="right" if column in right else "left")
    return out
