"""Progress drawn on the terminal: a live line per piece of work while it runs, one line with
its time when it ends; nothing at all when stderr is not a terminal (logs and pipes stay clean)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tapeflow.cli.console import err
from tapeflow.progress import Step, listening


@contextmanager
def showing_progress(console: Console = err) -> Iterator[None]:
    """Draw every step reported inside the block, when `console` is a terminal."""
    if not console.is_terminal:
        yield
        return
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("[dim]{task.fields[detail]}"),
                   console=console, transient=True)
    tasks: dict[str, TaskID] = {}

    def show(step: Step) -> None:
        if step.finished:
            if (task := tasks.pop(step.work, None)) is not None:
                bar.remove_task(task)
            counted = f", {step.done:,}/{step.total:,}" if step.total else ""
            bar.console.print(f"[green]done[/green] {step.work} ({step.elapsed_s:.1f} s{counted})"
                              + (f" [dim]{step.detail}[/dim]" if step.detail else ""), highlight=False)
            return
        if step.work not in tasks:
            tasks[step.work] = bar.add_task(step.work, total=step.total, detail=step.detail)
        bar.update(tasks[step.work], completed=step.done, total=step.total, detail=step.detail)

    with bar, listening(show):
        yield
