"""`tapeflow nlp models` as text that fits 80 columns: one line a model, the current one marked,
a version too long for its column on a line of its own (never cut)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

WIDTH = 80
MARK = "* "
NEW_YORK = ZoneInfo("America/New_York")
_FIGURES = ("trained (NY)", 16), ("train", 6), ("held-out", 8), ("accuracy", 8), ("macro-F1", 8)


@dataclass(frozen=True)
class ModelLine:
    """What the listing shows of one model (or of the lexicon baseline, which has no date)."""

    version: str
    trained_at: datetime | None
    train_rows: int | None
    held_out_rows: int | None
    accuracy: float | None
    macro_f1: float | None


def listing(models: list[ModelLine], current: str | None, width: int = WIDTH) -> list[str]:
    """The header and one line per model; `current` gets the mark."""
    figures_width = sum(w + 2 for _, w in _FIGURES)
    room = width - len(MARK) - figures_width
    column = max(len("version"), min(room, max((len(m.version) for m in models), default=0)))
    lines = [" " * len(MARK) + _row("version", [name for name, _ in _FIGURES], column)]
    for model in models:
        mark = MARK if model.version == current else " " * len(MARK)
        cells = [model.trained_at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M") if model.trained_at else "",
                 _count(model.train_rows), _count(model.held_out_rows), _figure(model.accuracy), _figure(model.macro_f1)]
        if len(model.version) > column:  # its own line, then the figures under an empty version cell
            lines += [mark + model.version, " " * len(MARK) + _row("", cells, column)]
        else:
            lines.append(mark + _row(model.version, cells, column))
    return lines


def _row(version: str, cells: list[str], column: int) -> str:
    """The version and the date to the left of their columns, the figures to the right."""
    date, *figures = cells
    return (version.ljust(column) + "  " + date.ljust(_FIGURES[0][1])
            + "".join("  " + cell.rjust(w) for cell, (_, w) in zip(figures, _FIGURES[1:])))


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _figure(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
