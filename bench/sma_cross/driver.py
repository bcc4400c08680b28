"""SMA-crossover benchmark driver: data, exact reference, agreement of every engine with it,
then timings and peak memory, one process at a time (the machine has 2 cores).

    .venv/bin/python bench/sma_cross/driver.py                # everything
    .venv/bin/python bench/sma_cross/driver.py --phase agree  # data + reference + agreement only
    .venv/bin/python bench/sma_cross/driver.py --phase time --bt-runs 3

The path a user runs (`tapeflow backtest --bars`, the CLI's defaults) and realistic orders
(stops, liquidity slippage, a volume cap) are timed by user_path.py (issue 20).

Needs the peers' venv for vectorbt/backtrader (created here if missing):
    python3.11 -m venv bench/.venv-peers
    bench/.venv-peers/bin/pip install vectorbt==1.2.0 backtrader==1.9.78.123 polars pyarrow

Every engine run is its own subprocess and writes its fill list; this driver compares it
with the exact reference (rules §8). Results: bench/results/sma_cross.json (gitignored) and
a Markdown table on stdout.

Timing definitions (all on variant 1, s = 0; slippage does not change the work):
* tapeflow cold: wall time of a fresh `python run_tapeflow.py once DATA` measured from here,
  i.e. interpreter start + imports + reading the Parquet file + the backtest; median of
  --cold-runs processes.
* warm: in one process, the backtest on bars already in memory, median of 5 runs after a
  first one (tapeflow: History + signals + simulate; vectorbt: MA + signals + from_signals
  + order records + final value, after numba compiled or loaded its cache).
* vectorbt first call: in a fresh process, the first backtest call, with numba's on-disk
  cache present (a user's second session) and with an empty NUMBA_CACHE_DIR (first ever).
* backtrader: median of --bt-runs in one process (it has nothing to warm up).
Peak MB: the process's peak RSS (getrusage ru_maxrss), reading the data included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import datagen
import polars as pl
import reference
from common import BENCH, DATASETS, RESULTS, TIMED, VARIANTS, Outcome, compare, load

ROOT = BENCH.parents[1]
MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = BENCH.parent / ".venv-peers" / "bin" / "python"
PEER_PINS = ["vectorbt==1.2.0", "backtrader==1.9.78.123", "polars", "pyarrow"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_peers() -> None:
    if PEERS_PY.exists():
        return
    log("creating bench/.venv-peers")
    subprocess.run(["python3.11", "-m", "venv", str(PEERS_PY.parents[1])], check=True)
    subprocess.run([str(PEERS_PY), "-m", "pip", "install", "-q", *PEER_PINS], check=True)


def run_json(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Run a runner; its last stdout line is JSON. Returns (that, wall seconds from here)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def engine_cmd(engine: str, *args: str) -> list[str]:
    if engine == "tapeflow":
        return [str(MAIN_PY), "run_tapeflow.py", *args]
    return [str(PEERS_PY), "run_peers.py", engine, *args]


# ------------------------------------------------------------------------------ reference

def reference_phase(names) -> dict:
    out = {}
    for name in names:
        bars = load(name)
        out[name] = {"bars": bars.height, "symbols": bars["symbol"].n_unique(), **reference.tie_stats(bars)}
        for variant, bps in VARIANTS.items():
            stem = RESULTS / f"ref_{name}_{variant}"
            fills, equity, took = reference.check(bars, bps)
            fills.write_parquet(stem.with_suffix(".fills.parquet"))
            stem.with_suffix(".json").write_text(json.dumps({"equity": f"{equity.numerator}/{equity.denominator}"}))
            out[name][variant] = {"fills": fills.height, "round_trips": int((fills["side"] == "sell").sum()),
                                  "final_equity": float(equity), **took}
            log(f"reference {name} {variant}: {out[name][variant]}")
    return out


def read_reference(name: str, variant: str) -> tuple[pl.DataFrame, Fraction]:
    stem = RESULTS / f"ref_{name}_{variant}"
    return pl.read_parquet(stem.with_suffix(".fills.parquet")), Fraction(json.loads(stem.with_suffix(".json").read_text())["equity"])


# ------------------------------------------------------------------------------ agreement

def agree_phase(names, engines) -> dict:
    out = {}
    for name in names:
        for variant in VARIANTS:
            ref, ref_eq = read_reference(name, variant)
            for engine in engines:
                stem = RESULTS / f"{engine}_{name}_{variant}"
                printed, wall = run_json(engine_cmd(engine, "agree", name, variant, str(stem)))
                got = Outcome.read(stem)
                verdict = compare(ref, ref_eq, got)
                verdict.update(got.summary(), wall_s=wall)
                if "engine_sha256" in printed:
                    verdict["engine_sha256"] = printed["engine_sha256"]
                out.setdefault(name, {}).setdefault(variant, {})[engine] = verdict
                log(f"agree {name} {variant} {engine}: agrees={verdict['agrees']} fills={got.fills.height} "
                    f"equity={got.final_equity:,.6f} diff={verdict['equity_diff']:.2e}"
                    + (f" FIRST DIFF {verdict['first_difference']}" if "first_difference" in verdict else ""))
    return out


# ------------------------------------------------------------------------------ timing

def time_phase(names, cold_runs: int, warm_runs: int, bt_runs: int, engines) -> dict:
    out = {}
    for name in names:
        res = out.setdefault(name, {})
        if "tapeflow" in engines:
            colds = []
            for _ in range(cold_runs):
                inner, wall = run_json(engine_cmd("tapeflow", "once", name))
                colds.append({**inner, "wall_s": wall})
            res["tapeflow_cold"] = {
                "median_s": statistics.median(c["wall_s"] for c in colds), "runs_s": [c["wall_s"] for c in colds],
                "peak_rss_mb": statistics.median(c["peak_rss_mb"] for c in colds),
                "median_imports_s": statistics.median(c["imports_s"] for c in colds),
                "median_load_s": statistics.median(c["load_s"] for c in colds),
                "median_backtest_s": statistics.median(c["backtest_s"] for c in colds),
                "engine_sha256": sorted({c["engine_sha256"] for c in colds}),
            }
            log(f"time {name} tapeflow cold: {res['tapeflow_cold']}")
            warm, _ = run_json(engine_cmd("tapeflow", "warm", name, "--runs", str(warm_runs)))
            res["tapeflow_warm"] = {"median_s": warm["warm_median_s"], "runs_s": warm["warm_s"],
                                    "first_s": warm["first_s"], "peak_rss_mb": warm["peak_rss_mb"],
                                    "engine_sha256": warm["engine_sha256"]}
            log(f"time {name} tapeflow warm: {res['tapeflow_warm']}")
        if "vbt" in engines:
            with tempfile.TemporaryDirectory(prefix="numba-empty-") as empty:
                first, _ = run_json(engine_cmd("vbt", "warm", name, "--runs", "1"), env={"NUMBA_CACHE_DIR": empty})
            res["vbt_first_compile"] = {"median_s": first["first_s"], "peak_rss_mb": first["peak_rss_mb"]}
            warm, _ = run_json(engine_cmd("vbt", "warm", name, "--runs", str(warm_runs)))
            res["vbt_first_cached"] = {"median_s": warm["first_s"]}
            res["vbt_warm"] = {"median_s": warm["warm_median_s"], "runs_s": warm["warm_s"],
                               "peak_rss_mb": warm["peak_rss_mb"], "imports_s": warm["imports_s"]}
            colds = []
            for _ in range(cold_runs):
                inner, wall = run_json(engine_cmd("vbt", "once", name))
                colds.append({**inner, "wall_s": wall})
            res["vbt_cold"] = {"median_s": statistics.median(c["wall_s"] for c in colds),
                               "runs_s": [c["wall_s"] for c in colds],
                               "peak_rss_mb": statistics.median(c["peak_rss_mb"] for c in colds)}
            log(f"time {name} vectorbt: { {k: v for k, v in res.items() if k.startswith('vbt')} }")
        if "bt" in engines:
            warm, _ = run_json(engine_cmd("bt", "warm", name, "--runs", str(bt_runs - 1)))
            runs = [warm["first_s"], *warm["warm_s"]]
            res["bt"] = {"median_s": statistics.median(runs), "runs_s": runs, "peak_rss_mb": warm["peak_rss_mb"]}
            log(f"time {name} backtrader: {res['bt']}")
    return out


# ------------------------------------------------------------------------------ report

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 2**20
    versions = {}
    for py, mods in ((MAIN_PY, ["polars", "numpy"]), (PEERS_PY, ["vectorbt", "backtrader", "numba", "pandas", "numpy"])):
        code = f"import importlib,json;print(json.dumps({{m: importlib.import_module(m).__version__ for m in {mods!r}}}))"
        if py.exists():
            got = json.loads(subprocess.run([str(py), "-c", code], capture_output=True, text=True).stdout)
            versions.update({(f"peers_{k}" if py == PEERS_PY else k): v for k, v in got.items()})
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1), "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(), **versions,
            "engine_sha256": engine_sha256()}


def engine_sha256() -> str:
    code = "import run_tapeflow; print(run_tapeflow.engine_sha256())"
    return subprocess.run([str(MAIN_PY), "-c", code], cwd=BENCH, capture_output=True, text=True).stdout.strip()


ROWS = [
    ("tapeflow_cold", "tapeflow, cold (fresh process: start + imports + read + backtest)", "tapeflow"),
    ("tapeflow_warm", "tapeflow, warm (in-process median)", "tapeflow"),
    ("vbt_warm", "vectorbt, warm (after compile)", "vbt"),
    ("vbt_first_cached", "vectorbt, first call, numba cache on disk", "vbt"),
    ("vbt_first_compile", "vectorbt, first call, empty numba cache (compile)", "vbt"),
    ("vbt_cold", "vectorbt, cold (fresh process, cache on disk)", "vbt"),
    ("bt", "backtrader", "bt"),
]


def table(results: dict) -> str:
    lines = ["| dataset | engine | agrees (s=0 / s=10bp) | median s | peak MB | ratio to vectorbt warm |",
             "|---|---|---|---:|---:|---:|"]
    for name, timing in results.get("time", {}).items():
        vbt = timing.get("vbt_warm", {}).get("median_s")
        for key, label, engine in ROWS:
            if key not in timing:
                continue
            agreed = results.get("agree", {}).get(name, {})
            marks = [agreed.get(v, {}).get(engine, {}).get("agrees") for v in VARIANTS]
            mark = " / ".join("yes" if m else ("NO" if m is False else "?") for m in marks)
            t = timing[key]
            peak = f"{t['peak_rss_mb']:,.0f}" if "peak_rss_mb" in t else ""
            ratio = f"{t['median_s'] / vbt:.1f}x" if vbt else ""
            lines.append(f"| {name} | {label} | {mark} | {t['median_s']:.3f} | {peak} | {ratio} |")
    return "\n".join(lines)


def agreement_table(results: dict) -> str:
    lines = ["| dataset | slippage | reference fills / round trips / final equity | tapeflow | vectorbt | backtrader |",
             "|---|---|---|---|---|---|"]
    for name, per in results.get("agree", {}).items():
        for variant, engines in per.items():
            ref = results["reference"][name][variant]
            cells = []
            for e in ("tapeflow", "vbt", "bt"):
                v = engines.get(e)
                cells.append("" if v is None else (
                    f"agrees (equity diff {v['equity_diff']:.1e}, max price diff {v['max_price_diff']:.1e})"
                    if v["agrees"]
                    else f"DIFFERS at fill {v.get('first_difference', {}).get('index')}, equity diff {v['equity_diff']:.3g}"))
            lines.append(f"| {name} | {variant} | {ref['fills']:,} / {ref['round_trips']:,} / {ref['final_equity']:,.6f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["all", "agree", "time", "report"], default="all")
    parser.add_argument("--data", default=",".join(DATASETS))
    parser.add_argument("--engines", default="tapeflow,vbt,bt")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--bt-runs", type=int, default=3)
    args = parser.parse_args()
    names, engines = args.data.split(","), args.engines.split(",")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "sma_cross.json"
    results = json.loads(path.read_text()) if path.exists() else {}

    if args.phase != "report":
        results["machine"] = machine()
        datagen.ensure(names)
        if {"vbt", "bt"} & set(engines):
            ensure_peers()
    if args.phase in ("all", "agree"):
        results.setdefault("reference", {}).update(reference_phase(names))
        path.write_text(json.dumps(results, indent=1, default=str))
        for name, per in agree_phase(names, engines).items():
            for variant, got in per.items():
                results.setdefault("agree", {}).setdefault(name, {}).setdefault(variant, {}).update(got)
        path.write_text(json.dumps(results, indent=1, default=str))
    if args.phase in ("all", "time"):
        for name, got in time_phase([n for n in names if n in TIMED], args.cold_runs, args.warm_runs, args.bt_runs,
                                    engines).items():
            results.setdefault("time", {}).setdefault(name, {}).update(got)
        path.write_text(json.dumps(results, indent=1, default=str))
    if args.phase != "report":
        results["machine"]["engine_sha256_at_end"] = engine_sha256()
        path.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results.get("machine", {}), default=str))
    print(agreement_table(results))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
