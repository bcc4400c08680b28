"""Markdown summaries of backtests, walk-forwards and perturbations (Prefect artifacts)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import date

from tapeflow.backtest.formatting import headline_pairs
from tapeflow.backtest.run import Backtest
from tapeflow.research.perturb import Perturbation
from tapeflow.research.walkforward import FoldResult


def number(value: object) -> str:
    return f"{value:,.4f}" if isinstance(value, float) else str(value)


def params_text(params: Mapping[str, object]) -> str:
    """`fast=10, slow=30`: a strategy's parameters as a person writes them."""
    return ", ".join(f"{name}={value}" for name, value in params.items()) or "default parameters"


def backtest_title(run: Backtest, start: date, end: date) -> str:
    return f"{run.strategy} ({params_text(run.params)}), {start:%Y-%m-%d}..{end:%Y-%m-%d}"


def metric_rows(run: Backtest) -> list[dict[str, str]]:
    """The run's metrics, each with its unit (%, $, days ...), as rows of a table artifact."""
    return [{"metric": name, "value": value} for name, value in headline_pairs(run.metrics)]


def setting_rows(run: Backtest, settings: Mapping[str, object]) -> list[dict[str, str]]:
    """What the run was asked for: the strategy's parameters, then the flow's other settings."""
    rows = [{"setting": f"params.{name}", "value": str(value)} for name, value in run.params.items()]
    return rows + [{"setting": name, "value": "" if value is None else str(value)} for name, value in settings.items()]


def _image(png: bytes | None) -> str:
    # Embedded, so the artifact shows the chart with no file server and keeps it after the file is gone.
    return f"![equity and drawdown](data:image/png;base64,{base64.b64encode(png).decode()})\n\n" if png else ""


def backtest_markdown(run: Backtest, run_id: str, report_path: str | None, *, title: str = "",
                      report_url: str | None = None, chart: bytes | None = None) -> str:
    """The run at a glance: title, equity chart, headline metrics with units, where the report is."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in headline_pairs(run.metrics))
    where = f"[open the report]({report_url})" if report_url else f"report: `{report_path}`"
    assumptions = "\n".join(f"- **{name}**: {value}" for name, value in run.assumptions.items())
    return (f"# {title or run.strategy}\n\nrun `{run_id}`; {where}\n\n{_image(chart)}"
            f"| metric | value |\n|---|---|\n{rows}\n\n## Assumptions\n{assumptions}\n")


def walk_forward_markdown(strategy: str, objective: str, folds: list[FoldResult], oos: Backtest, report_path: str) -> str:
    lines = [
        f"| {f.fold.index} | {f.fold.test_start:%Y-%m-%d}..{f.fold.test_end:%Y-%m-%d} | {json.dumps(f.params)} | "
        f"{number(f.in_sample_objective)} | {number(f.out_of_sample.get(objective))} | {number(f.out_of_sample.get('total_return'))} |"
        for f in sorted(folds, key=lambda f: f.fold.index)
    ]
    return (f"# {strategy} walk-forward\n\nout-of-sample {objective}: **{number(oos.metrics.get(objective))}**, "
            f"total return {number(oos.metrics.get('total_return'))}; report `{report_path}`\n\n"
            f"| fold | test window | chosen | in-sample {objective} | OOS {objective} | OOS return |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines))


def perturbation_markdown(strategy: str, result: Perturbation) -> str:
    rows = "\n".join(
        f"| {s.param} | {number(s.objective_low)} | {number(s.objective_point)} | {number(s.objective_high)} | {number(s.worst_ratio)} |"
        for s in result.sensitivities
    )
    return (f"# {strategy} {json.dumps(result.params)}: **{result.verdict}**\n\n{result.reason}\n\n"
            "| param | -pct | point | +pct | worst ratio |\n|---|---|---|---|---|\n" + rows)
