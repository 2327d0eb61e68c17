"""Plain-text tables for terminals: aligned columns, numbers to three significant digits."""

from __future__ import annotations


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths])] + [line(row) for row in rows])


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
