"""A DataTable whose cells change in place and repaint only their own row.

``DataTable.update_cell`` repaints the whole table; over a slow SSH link that is the table's
every line (and its scrollbar) for one changed digit. When the new value cannot change its
column's width, only the row is repainted; otherwise the table is re-measured as usual.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def _width(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))


class InPlaceTable(DataTable):
    _row_only: int | None = None

    def put(self, row: str, column: str, value: Any, old: Any) -> None:
        """Set one cell (the caller knows it changed); the cursor and scroll stay where they are."""
        col = self.columns[column]  # type: ignore[index]
        limit = col.content_width if col.auto_width else col.width
        new_w, old_w = _width(value), _width(old)
        same_width = new_w <= limit and (old_w < limit or old_w == new_w)
        self._row_only = self.get_row_index(row) if same_width else None
        try:
            self.update_cell(row, column, value, update_width=not same_width)
        finally:
            self._row_only = None

    def refresh(self, *regions: Any, **kw: Any) -> Any:
        row = self._row_only
        if row is not None and not regions and not kw:  # update_cell's full repaint → this row only
            self._row_only = None
            return self.refresh_row(row)
        return super().refresh(*regions, **kw)
