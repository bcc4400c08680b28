"""Issue 20's timings: the path a user runs (`tapeflow backtest sma_cross --bars FILE` with the
CLI's defaults) and realistic orders (2% stop, liquidity slippage, 10% volume cap), beside
vectorbt and backtrader; prints the Markdown tables of BENCHMARKS.md's section "The path a user
runs, and realistic orders (issue 20)".

    .venv/bin/python bench/sma_cross/user_path.py                          # both phases on A and B
    .venv/bin/python bench/sma_cross/user_path.py --phase user --data A
    .venv/bin/python bench/sma_cross/user_path.py --phase realistic --data B --bt-runs 1
    .venv/bin/python bench/sma_cross/user_path.py --phase report           # the tables from the last results

Phase `user`:
* whole process: wall time, from here, of a fresh `tapeflow backtest sma_cross --bars FILE` (no
  other option: the CLI's defaults, fast 10 / slow 30 / 100 shares, retail-default costs, the
  default execution policy and buying power check, the HTML report written; TAPEFLOW_HOME a temp
  dir) and of a fresh `run_peers.py vbt once` (imports, reading the file, the backtest), one
  untimed run of each first (numba's on-disk cache, .pyc files, the page cache), then --runs of
  each interleaved; medians.
* warm: `run_user.py warm` (signals + simulate with the CLI's configuration, on the History the
  CLI builds from the file) and `run_peers.py vbt warm`, medians of --warm-runs after a first run.
Phase `realistic`: `run_user.py realistic` (tapeflow market-only and realistic, interleaved in one
process), vectorbt warm market-only and with `sl_stop`, backtrader once market-only
(--bt-market-runs, 0: skip) and median of --bt-runs with the stop and the volume filler (the
first run counted: backtrader has nothing to warm up). Settings: run_user.py, run_peers.py.

Results: bench/results/user_path.json (gitignored), merged per dataset and phase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datagen
from common import RESULTS, TIMED, data_path
from driver import MAIN_PY, ROOT, engine_cmd, engine_sha256, ensure_peers, log, machine, run_json

TAPEFLOW = ROOT / ".venv" / "bin" / "tapeflow"
RESULTS_FILE = RESULTS / "user_path.json"
_CLI_OUTCOME = re.compile(r"fills: ([\d,]+), final equity: (-?[\d,.]+)")


def cli_run(name: str, home: Path) -> tuple[float, dict[str, float]]:
    """One fresh `tapeflow backtest sma_cross --bars FILE`: (wall seconds, what it printed)."""
    cmd = [str(TAPEFLOW), "backtest", "sma_cross", "--bars", str(data_path(name))]
    # PYTHONPATH: this checkout's tapeflow even where .venv's editable install points at another
    # (a copy of an older commit, timed with the same venv).
    env = {**os.environ, "TAPEFLOW_HOME": str(home), "COLUMNS": "120",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=home, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    found = _CLI_OUTCOME.search(proc.stdout)
    printed = {"fills": int(found[1].replace(",", "")), "final_equity": float(found[2].replace(",", ""))} if found else {}
    return wall, printed


def vbt_once(name: str) -> tuple[float, dict]:
    inner, wall = run_json(engine_cmd("vbt", "once", name))
    return wall, inner


def median_of(walls: list[float]) -> dict[str, object]:
    return {"median_s": statistics.median(walls), "runs_s": walls}


# ------------------------------------------------------------------------------ phases

def user_phase(name: str, runs: int, warm_runs: int) -> dict:
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="tapeflow-home-") as tmp:
        home = Path(tmp)
        log(f"user {name}: untimed first runs (numba cache, .pyc, page cache)")
        cli_run(name, home)
        vbt_once(name)
        cli_walls, vbt_walls = [], []
        for i in range(runs):
            wall, printed = cli_run(name, home)
            cli_walls.append(wall)
            res["cli_outcome"] = printed
            vwall, inner = vbt_once(name)
            vbt_walls.append(vwall)
            res["vbt_outcome"] = {k: inner[k] for k in ("fills", "final_equity", "imports_s", "load_s", "backtest_s")}
            log(f"user {name} run {i + 1}/{runs}: tapeflow CLI {wall:.2f} s, vectorbt process {vwall:.2f} s")
    res["cli_process"] = median_of(cli_walls)
    res["vbt_process"] = median_of(vbt_walls)
    warm, _ = run_json([str(MAIN_PY), "run_user.py", "warm", name, "--runs", str(warm_runs)])
    res["tapeflow_defaults_warm"] = {"median_s": warm["defaults"]["warm_median_s"], "runs_s": warm["defaults"]["warm_s"],
                                     "first_s": warm["defaults"]["first_s"], "peak_rss_mb": warm["peak_rss_mb"],
                                     **{k: warm["defaults"][k] for k in ("fills", "final_equity")},
                                     "config": warm["config"], "engine_sha256": warm["engine_sha256"],
                                     "code_sha256": warm.get("code_sha256")}
    log(f"user {name} tapeflow defaults warm: {res['tapeflow_defaults_warm']['median_s']:.3f} s")
    vwarm, _ = run_json(engine_cmd("vbt", "warm", name, "--runs", str(warm_runs)))
    res["vbt_warm"] = {"median_s": vwarm["warm_median_s"], "runs_s": vwarm["warm_s"], "peak_rss_mb": vwarm["peak_rss_mb"],
                       "fills": vwarm["fills"], "final_equity": vwarm["final_equity"]}
    log(f"user {name} vectorbt warm: {res['vbt_warm']['median_s']:.3f} s")
    return res


def realistic_phase(name: str, tapeflow_runs: int, warm_runs: int, bt_runs: int, bt_market_runs: int,
                    engines: list[str], head: int | None = None) -> dict:
    res: dict = {"head": head}
    cut = [] if head is None else ["--head", str(head)]
    if "tapeflow" in engines:
        got, _ = run_json([str(MAIN_PY), "run_user.py", "realistic", name, "--runs", str(tapeflow_runs), *cut])
        for key in ("market_only", "realistic"):
            r = got[key]
            res[f"tapeflow_{key}"] = {"median_s": r["warm_median_s"], "runs_s": r["warm_s"] or [r["first_s"]],
                                      "first_s": r["first_s"],
                                      **{k: r[k] for k in ("fills", "stop_fills", "sells", "final_equity")}}
        res["tapeflow_realistic"]["config"] = got["config"]
        res["engine_sha256"], res["code_sha256"] = got["engine_sha256"], got.get("code_sha256")
        log(f"realistic {name} tapeflow: market-only {res['tapeflow_market_only']['median_s']:.3f} s, "
            f"realistic {res['tapeflow_realistic']['median_s']:.3f} s")
    if "vbt" in engines:
        for orders in ("market", "stop"):
            warm, _ = run_json(engine_cmd("vbt", "warm", name, "--runs", str(warm_runs), "--orders", orders, *cut))
            res[f"vbt_{orders}"] = {"median_s": warm["warm_median_s"], "runs_s": warm["warm_s"],
                                    **{k: warm[k] for k in ("fills", "round_trips", "final_equity")}}
            log(f"realistic {name} vectorbt {orders}: {warm['warm_median_s']:.3f} s")
    if "bt" in engines and bt_market_runs:
        walls, inner = [], {}
        for _ in range(bt_market_runs):
            inner, _ = run_json(engine_cmd("bt", "once", name, *cut))
            walls.append(inner["backtest_s"])
        res["bt_market"] = {**median_of(walls), **{k: inner[k] for k in ("fills", "round_trips", "final_equity")}}
        log(f"realistic {name} backtrader market: {res['bt_market']}")
    if "bt" in engines and bt_runs:
        warm, _ = run_json(engine_cmd("bt", "warm", name, "--runs", str(bt_runs - 1), "--orders", "stop", *cut))
        walls = [warm["first_s"], *warm["warm_s"]]
        res["bt_stop"] = {**median_of(walls), **{k: warm[k] for k in ("fills", "round_trips", "final_equity")}}
        log(f"realistic {name} backtrader stop: {res['bt_stop']}")
    return res


# ------------------------------------------------------------------------------ report

def _s(entry: dict | None) -> str:
    if not entry:
        return ""
    n = len(entry.get("runs_s", []))
    return f"{entry['median_s']:.3f}" + (f" ({n})" if n else "")


def _ratio(a: dict | None, b: dict | None) -> str:
    return f"{a['median_s'] / b['median_s']:.2f}x" if a and b and b.get("median_s") else ""


def user_table(results: dict) -> str:
    lines = ["| dataset | what | median s (runs) | ratio to vectorbt | fills | final equity |",
             "|---|---|---:|---:|---:|---:|"]
    for name, res in results.get("user", {}).items():
        out, vout = res.get("cli_outcome", {}), res.get("vbt_outcome", {})
        rows = [
            ("`tapeflow backtest sma_cross --bars FILE`, whole process (CLI defaults)", res.get("cli_process"),
             res.get("vbt_process"), out),
            ("vectorbt, whole process (numba cache on disk)", res.get("vbt_process"), res.get("vbt_process"), vout),
            ("tapeflow engine warm, CLI defaults (signals + simulate)", res.get("tapeflow_defaults_warm"),
             res.get("vbt_warm"), res.get("tapeflow_defaults_warm", {})),
            ("vectorbt warm (SMA rules)", res.get("vbt_warm"), res.get("vbt_warm"), res.get("vbt_warm", {})),
        ]
        for label, entry, peer, outcome in rows:
            if entry:
                fills = f"{outcome['fills']:,}" if "fills" in outcome else ""
                equity = f"{outcome['final_equity']:,.2f}" if "final_equity" in outcome else ""
                lines.append(f"| {name} | {label} | {_s(entry)} | {_ratio(entry, peer)} | {fills} | {equity} |")
    return "\n".join(lines)


def realistic_table(results: dict) -> str:
    """One row a dataset: medians in seconds (runs), the ratios, and the fills of the realistic runs."""
    lines = ["| data | tapeflow market-only | tapeflow realistic | realistic / market-only | backtrader market-only | "
             "backtrader stop + cap | tapeflow realistic / backtrader stop | vectorbt market-only | vectorbt `sl_stop` | "
             "fills: tapeflow realistic (stop fills) / backtrader stop |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, res in results.get("realistic", {}).items():
        real, bt_stop = res.get("tapeflow_realistic"), res.get("bt_stop")
        fills = " / ".join(
            "" if e is None else f"{e['fills']:,}" + (f" ({e['stop_fills']:,})" if e.get("stop_fills") is not None else "")
            for e in (real, bt_stop))
        cells = [_s(res.get("tapeflow_market_only")), _s(real), _ratio(real, res.get("tapeflow_market_only")),
                 _s(res.get("bt_market")), _s(bt_stop), _ratio(real, bt_stop), _s(res.get("vbt_market")),
                 _s(res.get("vbt_stop")), fills]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["all", "user", "realistic", "report"], default="all")
    parser.add_argument("--data", default=",".join(TIMED))
    parser.add_argument("--runs", type=int, default=3, help="whole-process runs of each")
    parser.add_argument("--warm-runs", type=int, default=3, help="in-process runs after the first")
    parser.add_argument("--realistic-runs", type=int, default=None,
                        help="tapeflow realistic/market-only runs after the first (default --warm-runs; 0: the "
                             "first run is the measure, for runs of minutes)")
    parser.add_argument("--engines", default="tapeflow,vbt,bt", help="realistic phase: which engines")
    parser.add_argument("--head", type=int, help="realistic phase: each symbol's first HEAD bars only")
    parser.add_argument("--bt-runs", type=int, default=3, help="backtrader runs with the stop (0: skip)")
    parser.add_argument("--bt-market-runs", type=int, default=1, help="backtrader market-only runs (0: skip)")
    args = parser.parse_args()
    names = args.data.split(",")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}

    if args.phase != "report":
        datagen.ensure(names)
        ensure_peers()
        results["machine"] = {**machine(), "command": " ".join(sys.argv)}
        for name in names:
            if args.phase in ("all", "user"):
                stamp = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_avg": os.getloadavg()}
                results.setdefault("user", {})[name] = {**user_phase(name, args.runs, args.warm_runs), **stamp}
                RESULTS_FILE.write_text(json.dumps(results, indent=1, default=str))
            if args.phase in ("all", "realistic"):
                stamp = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_avg": os.getloadavg()}
                key = name if args.head is None else f"{name}, first {args.head:,} bars a symbol"
                results.setdefault("realistic", {})[key] = {
                    **realistic_phase(name, args.warm_runs if args.realistic_runs is None else args.realistic_runs,
                                      args.warm_runs, args.bt_runs, args.bt_market_runs,
                                      args.engines.split(","), args.head), **stamp}
                RESULTS_FILE.write_text(json.dumps(results, indent=1, default=str))
        results["machine"]["engine_sha256_at_end"] = engine_sha256()
        results["machine"]["load_avg_at_end"] = os.getloadavg()
        RESULTS_FILE.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results.get("machine", {}), default=str))
    print(user_table(results))
    print()
    print(realistic_table(results))


if __name__ == "__main__":
    main()
