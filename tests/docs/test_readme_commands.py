"""The manual's commands, as written: README.md, then docs/*.md by name.

The rule:
- every line of a ```sh block that starts with `tapeflow` is parsed by the real command line
  (command, subcommand, options, their values, required arguments) without running it, so
  a misspelt command or an option that does not exist fails;
- each is then run, in page order, against one fresh TAPEFLOW_HOME that starts with a small
  ingest of the bundled daily panel, and must exit 0, unless NOT_RUN names it (by its first
  words) with the reason; those are only parsed;
- in those blocks `export NAME=VALUE` sets the environment for the rest of its page, `> FILE`
  writes a command's output to FILE, `mkdir -p` and `cp` are carried out (`~` is a temporary
  folder, relative sources are in the checkout), `make TARGET` must be a Makefile target,
  and other lines (`source`, `prefect ...`) are left alone;
- every file in docs/examples/ is shown whole in a ```python block, every repository path a
  page names exists, every TAPEFLOW_ setting a page names is a real one (and
  docs/configuration.md names them all), and the README's command map names every command.

The commands run in this process through the same typer app the `tapeflow` script calls
(pyproject's `[project.scripts]`, checked below with one real call of the script): a
process per command would pay Prefect's start-up each time.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tapeflow.cli import entry
from tapeflow.cli.kill_switch import kill_switch_command
from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DIR, Settings

PAGES = (PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md")))
EXAMPLES = PROJECT_DIR / "docs" / "examples"

NOT_RUN: dict[tuple[str, ...], str] = {
    ("demo",): "a minute or two; `make demo` runs it in CI",
    ("serve",): "runs Prefect's server and a worker until Ctrl-C",
    ("postgres",): "starts a PostgreSQL server; tests/cli/test_postgres.py and tests/e2e/ run it",
    ("worker",): "runs a Prefect worker until Ctrl-C; tests/e2e/test_multi_machine.py runs it",
    ("trade",): "a session runs until the close; a replayed day takes half a minute",
    ("news", "stream"): "listens to Alpaca's news websocket: needs keys and the network",
    ("news", "catalysts"): "needs a trained sentiment model (`tapeflow nlp train`, minutes)",
    ("backtest", "news_catalyst"): "needs the demo's SPY minute bars, sample headlines and sentiment model; "
                                   "tests/flows/test_deployments.py runs it as the deployment backtest/backtest-news-catalyst",
    ("nlp", "train"): "fine-tunes the sentiment model: minutes",
    ("nlp", "eval"): "needs a trained sentiment model and scores thousands of headlines",
    ("nlp", "score"): "needs a trained sentiment model",
    ("report",): "names a run id (RUN_ID) of the reader's own backtests",
    ("paper-gap",): "names a paper session (SESSION_ID) that has run",
    ("promote", "opening_range", "--to", "live"): "is refused on purpose: no reconciled paper sessions yet",
    ("snapshot", "--source", "bullalert-mcp"): "calls BullAlert's MCP server (a key and the network); "
                                               "tests/venues/test_bullalert_mcp.py runs it against a fake",
}

# The warehouse the pages' queries and backtests read: a year of five names of the daily panel.
PREPARE = ["ingest", "--timeframe", "1d", "--start", "2009-08-21", "--end", "2010-08-20",
           *(arg for symbol in ("AAPL", "MSFT", "INTC", "XOM", "GE") for arg in ("--symbol", symbol))]

REPO_ROOTS = ("tapeflow/", "warehouse/", "flows/", "tasks/", "strategies/", "tests/", "data/", "docs/", "bench/", ".ci/")
REPO_FILES = ("prefect.yaml", "pyproject.toml", "Makefile", "constraints.txt")

runner = CliRunner()


@dataclass(frozen=True)
class Line:
    page: Path
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(PROJECT_DIR)}:{self.number}: {self.text}"


def blocks(page: Path, language: str) -> Iterator[list[Line]]:
    """The fenced blocks of `language` in `page`, as lines with their line numbers."""
    block: list[Line] | None = None
    for number, text in enumerate(page.read_text().splitlines(), start=1):
        if block is None and text.strip() == f"```{language}":
            block = []
        elif block is not None and text.strip() == "```":
            yield block
            block = None
        elif block is not None:
            block.append(Line(page, number, text))


def shell_lines(page: Path) -> Iterator[Line]:
    """The lines of the page's sh blocks, continuation lines joined."""
    for block in blocks(page, "sh"):
        pending: Line | None = None
        for line in block:
            if pending is not None:
                line = Line(page, pending.number, pending.text[:-1] + " " + line.text.strip())
            if line.text.rstrip().endswith("\\"):
                pending = Line(page, line.number, line.text.rstrip())
                continue
            pending = None
            if line.text.strip():
                yield line


def words(line: Line) -> list[str]:
    """The line as the shell splits it, comments dropped."""
    return shlex.split(line.text, comments=True)


def tapeflow_lines() -> list[Line]:
    return [line for page in PAGES for line in shell_lines(page) if words(line)[:1] == ["tapeflow"]]


def arguments(line: Line) -> tuple[list[str], str | None]:
    """The command's arguments after `tapeflow`, and the file its output goes to, if any."""
    argv = words(line)[1:]
    if ">" in argv:
        at = argv.index(">")
        return argv[:at], argv[at + 1]
    return argv, None


def not_run(argv: list[str]) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if tuple(argv[: len(prefix)]) == prefix:
            return reason
    return None


def _dry(command):
    """The click command tree with every command's body replaced by a no-op: parsing only."""
    for sub in (getattr(command, "commands", None) or {}).values():
        _dry(sub)
    if not getattr(command, "commands", None):
        command.callback = lambda **_: None
    return command


@pytest.mark.parametrize("line", tapeflow_lines(), ids=str)
def test_every_documented_command_parses(line: Line):
    argv, _ = arguments(line)
    try:
        _dry(typer.main.get_command(app)).main(argv, prog_name="tapeflow", standalone_mode=False)
    except Exception as exc:  # the CLI's usage errors: unknown command or option, bad value, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        pytest.fail(f"{line}\n  {message}")


def test_the_tapeflow_script_is_the_app_and_runs_from_the_path():
    scripts = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["tapeflow"].partition(":")
    # The script runs `app` for every command, and for `kill-switch` the same command without the rest.
    assert getattr(importlib.import_module(module), name) is entry.main
    [registered] = [c.callback for c in app.registered_commands if c.name == "kill-switch"]
    assert registered is kill_switch_command
    bin_dir = Path(sys.executable).parent  # the virtualenv `source .venv/bin/activate` puts first
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which("tapeflow", path=path)
    assert found, f"no tapeflow script in {bin_dir}"
    result = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stderr
    assert "backtest" in result.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_documented_commands_run(tapeflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    user_home = tmp_path / "user"  # what `~` means in the pages
    user_home.mkdir()
    prepared = runner.invoke(app, PREPARE)
    assert prepared.exit_code == 0, prepared.output

    failures: list[str] = []
    for page in PAGES:
        with monkeypatch.context() as env:
            for line in shell_lines(page):
                failure = _carry_out(line, user_home, env)
                if failure:
                    failures.append(failure)
    assert not failures, "\n\n".join(failures)


def _carry_out(line: Line, user_home: Path, env: pytest.MonkeyPatch) -> str | None:
    """Run one line of a page; a message when it fails."""
    parts = words(line)

    def home(path: str) -> Path:
        return user_home / path[2:] if path.startswith("~/") else Path(path)

    match parts:
        case ["tapeflow", *_]:
            argv, out = arguments(line)
            if not_run(argv):
                return None
            result = runner.invoke(app, argv)
            if result.exit_code != 0:
                return f"{line}\n  exit {result.exit_code}: {result.output[-1500:]}\n  {result.exception!r}"
            if out:
                Path(out).write_text(result.stdout)
        case ["export", assignment]:
            name, _, value = assignment.partition("=")
            env.setenv(name, str(home(value)))
        case ["mkdir", "-p", *folders]:
            for folder in folders:
                home(folder).mkdir(parents=True, exist_ok=True)
        case ["cp", source, target]:
            shutil.copy(PROJECT_DIR / source, home(target))
    return None


def test_make_targets_exist():
    makefile = (PROJECT_DIR / "Makefile").read_text()
    targets = {word for page in PAGES for line in shell_lines(page) if words(line)[:1] == ["make"]
               for word in words(line)[1:]}
    assert targets, "the README names no make target"
    missing = {t for t in targets if not re.search(rf"^{re.escape(t)}:", makefile, re.MULTILINE)}
    assert not missing, f"the Makefile has no target {sorted(missing)}"


def test_examples_are_shown_whole():
    shown = {"\n".join(line.text for line in block).strip() for page in PAGES for block in blocks(page, "python")}
    for example in sorted(EXAMPLES.glob("*.py")):
        assert example.read_text().strip() in shown, f"{example.relative_to(PROJECT_DIR)} differs from what the docs show"


def test_paths_the_pages_name_exist():
    missing = []
    for page in PAGES:
        text = page.read_text()
        for path in re.findall(r"`([^`\s]+)`", text):
            if path.startswith(REPO_ROOTS) or path in REPO_FILES:
                path = path.split("<")[0].rstrip(":")  # `tapeflow/venues/<vendor>`: its folder
                if not any(PROJECT_DIR.glob(path)):
                    missing.append(f"{page.name}: {path}")
        for link in re.findall(r"\]\(([^)#\s]+)", text):
            if not link.startswith(("http://", "https://")) and not (page.parent / link).exists():
                missing.append(f"{page.name}: link {link}")
    assert not missing, missing


def test_settings_the_pages_name_exist():
    real = {f"TAPEFLOW_{name.upper()}" for name in Settings.model_fields}
    named = {match for page in PAGES for match in re.findall(r"TAPEFLOW_[A-Z0-9_]+", page.read_text())}
    set_by_serve = {"TAPEFLOW_PROJECT_DIR"}
    set_by_serve |= {"TAPEFLOW_CALENDAR_CACHE"}  # read from the environment by tapeflow/calendar, which sits beside config
    unknown = {n for n in named - real - set_by_serve if not any(r.startswith(n) for r in real)}  # `TAPEFLOW_MONITOR_*`
    assert not unknown, sorted(unknown)
    listed = set(re.findall(r"TAPEFLOW_[A-Z0-9_]+", (PROJECT_DIR / "docs" / "configuration.md").read_text()))
    assert real <= listed, f"docs/configuration.md lacks {sorted(real - listed)}"


def test_readme_maps_every_command():
    rows = [line for line in (PROJECT_DIR / "README.md").read_text().splitlines() if line.startswith("| `tapeflow ")]
    missing = []
    for name, command in typer.main.get_command(app).commands.items():
        group_rows = [row for row in rows if re.search(rf"`tapeflow {re.escape(name)}[` ]", row)]
        if not group_rows:
            missing.append(name)
        for sub in getattr(command, "commands", {}) or {}:
            if not any(f"{sub}`" in row for row in group_rows):
                missing.append(f"{name} {sub}")
    assert not missing, f"the README's command map lacks {missing}"
