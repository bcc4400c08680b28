"""Markdown summaries of backtests, walk-forwards and perturbations (Prefect artifacts)."""

from __future__ import annotations

import json

from tapeflow.backtest.run import Backtest
from tapeflow.research.perturb import Perturbation
from tapeflow.research.walkforward import FoldResult


def number(value: object) -> str:
    return f"{value:,.4f}" if isinstance(value, float) else str(value)


def backtest_markdown(run: Backtest, run_id: str, report_path: str | None) -> str:
    rows = "\n".join(f"| {name} | {number(value)} |" for name, value in run.metrics.items())
    assumptions = "\n".join(f"- **{name}**: {value}" for name, value in run.assumptions.items())
    return (f"# {run.strategy} {run.params}\n\nrun `{run_id}`; report: `{report_path}`\n\n"
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
