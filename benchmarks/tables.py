"""The tables of ``benchmarks/RESULTS.md``: each runs its rows in processes of their own
(:mod:`benchmarks.measure`), and says what the targets ask against what was measured."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import (
    BARE_IMPORT,
    CHAIN_REPEATS,
    CHAIN_SECONDS,
    LANGUAGE,
    REFERENCE,
    REFERENCE_RATES,
    ROWS,
    TARGET,
    VENEZUELA,
    draws_per_trajectory,
    escalate_command,
    exact_p,
    row,
    scenario_row,
    subprocess_row,
)

# --- one row, in its own process -------------------------------------------------------------


# --- the tables --------------------------------------------------------------------------------


def _fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:,.2f} M/s"
    if rate >= 1e3:
        return f"{rate / 1e3:,.1f} k/s"
    return f"{rate:,.0f} /s"


def peer_table(chain: str, quick: bool) -> tuple[str, list[dict]]:
    exact = exact_p(chain)
    rows = []
    for name, (n, repeats, n_quick) in ROWS.items():
        size = n_quick if quick else n
        print(f"  {chain}: {name} ...", file=sys.stderr, flush=True)
        rows.append(row(name, size, 1 if quick else repeats, chain))
    per_trajectory = draws_per_trajectory(chain)
    floor_n = 10_000_000 if not quick else 500_000
    floor = subprocess_row(
        ["--floor", str(per_trajectory), "--n", str(floor_n), "--repeats", "1" if quick else "3"]
    )
    floor["name"] = (
        f"RNG floor (1 thread): {per_trajectory:.2f} draws a trajectory, escalate's generator"
    )
    rows.append(floor)

    lead = next(r for r in rows if r["name"] == "escalate, 2 threads")
    lead_rate = lead["n"] / lead["wall"]
    lines = [
        "| method | trajectories | median wall (s) | trajectories/s | peak memory (MB) "
        "| P(war by 730) ± SE | vs exact (SE) | escalate (2 threads) is ... x faster |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mb = r["peak_kb"] / 1024
        if r["name"].startswith("escalate solve"):
            lines.append(
                f"| {r['name']} | - | {r['wall']:.3f} | - | {mb:,.0f} | {r['value']:.6f} (exact) "
                "| - | - |"
            )
            continue
        rate = r["n"] / r["wall"]
        r["rate"] = rate
        if r["value"] is None:
            estimate, z = "-", "-"
        else:
            p = r["value"] / r["n"]
            se = math.sqrt(p * (1 - p) / r["n"])
            r["p"], r["se"] = p, se
            estimate = f"{p:.4f} ± {se:.4f}"
            z = f"{(p - exact) / se:+.2f}"
        lines.append(
            f"| {r['name']} | {r['n']:,} | {r['wall']:.3f} | {_fmt_rate(rate)} | {mb:,.0f} "
            f"| {estimate} | {z} | {lead_rate / rate:,.1f} |"
        )
    return "\n".join(lines), rows


def venezuela_table(quick: bool) -> str:
    """The shipped scenario's own figures: escalate on 2 threads and on 1, and solve."""
    n = 500_000 if quick else 10_000_000
    lines = [
        "| method | trajectories | median wall (s) | trajectories/s | P(full-scale war) ± SE |",
        "|---|---:|---:|---:|---:|",
    ]
    for threads in (2, 1):
        r = scenario_row(VENEZUELA, "full_scale_war", threads, n)
        label = f"escalate, {threads} thread{'s' if threads > 1 else ''}"
        lines.append(
            f"| {label} | {n:,} | {r['wall']:.3f} | {_fmt_rate(n / r['wall'])} "
            f"| {r['p']:.4f} ± {r['se']:.4f} |"
        )
    r = scenario_row(VENEZUELA, "full_scale_war", -1, 0)
    lines.append(f"| escalate solve (exact) | - | {r['wall']:.3f} | - | {r['p']:.6f} (exact) |")
    return "\n".join(lines)


def language_table(quick: bool) -> str:
    """What the keys of the richer language cost: the reference chain (none of them) beside the same
    chain with every one of them (language.yaml), run alternately, each in its own process."""
    n = 500_000 if quick else 10_000_000
    lines = [
        "| chain | method | trajectories | median wall (s) | trajectories/s "
        "| with every new key / without |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for threads in (1, 2, -1):
        walls = {}
        for label, path in (("reference (no new key)", REFERENCE), ("every new key", LANGUAGE)):
            r = scenario_row(path, TARGET, threads, 0 if threads < 0 else n)
            walls[label] = r["wall"]
            method = "solve (exact)" if threads < 0 else f"escalate, {threads} thread"
            method += "s" if threads > 1 else ""
            rate = "-" if threads < 0 else _fmt_rate(n / r["wall"])
            ratio = ""
            if label == "every new key":
                speed = walls["reference (no new key)"] / r["wall"]
                ratio = f"{speed:.2f}x the speed"
            lines.append(
                f"| {label} | {method} | {'-' if threads < 0 else f'{n:,}'} "
                f"| {r['wall']:.3f} | {rate} | {ratio} |"
            )
    return "\n".join(lines)


def compile_table() -> tuple[str, dict]:
    """Cold (empty cache) and cached compilation: the wall time of a whole small run."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold (empty numba cache)", "cached (second process)"):
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "escalate", "run", str(REFERENCE), "-n", "1e5",
                 "--seed", "1", "--format", "json"],
                capture_output=True, check=True, env=env,
            )  # fmt: skip
            out[label] = time.perf_counter() - began
    lines = ["| compilation | first result of `escalate run -n 1e5`, whole process (s) |",
             "|---|---:|"]  # fmt: skip
    lines += [f"| {label} | {wall:.2f} |" for label, wall in out.items()]
    return "\n".join(lines), out


def chain_sizes(quick: bool) -> tuple[int, float]:
    """Generated chains: the fewest trajectories, and the seconds of escalate on one thread
    that may raise them (0: never)."""
    return (200_000, 0.0) if quick else (2_000_000, CHAIN_SECONDS)


def chain_sizes_text(n: int, seconds: float) -> str:
    if seconds <= 0:
        return f"Each method runs {n:,} trajectories; medians of {CHAIN_REPEATS}."
    return (
        f"Each method runs the same trajectories, at least {n:,} and as many as escalate runs "
        f"on one thread in {seconds:g} s (so that a call's fixed costs and the timer's noise "
        f"do not show in a fast chain's rates); medians of {CHAIN_REPEATS}."
    )


def chains_table(quick: bool) -> str:
    """escalate against hand-written loops on every generated chain (the speed targets:
    the lead must hold on any chain)."""
    from benchmarks.chains import SHAPES

    n, seconds = chain_sizes(quick)
    lines = [
        "| chain | trajectories | escalate, 1 thread | 2 threads | hand-written, np.random "
        "| hand-written, xoshiro | 1 thread / np.random (>= 1.5) | 1 thread / xoshiro (>= 0.5) "
        "| 2 threads / 1 (>= 1.8) | P(war): exact; z of escalate, np.random, xoshiro |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    met = {"np": True, "xoshiro": True, "threads": True}
    for index, shape in enumerate(SHAPES):
        print(f"  chain: {shape.name} ...", file=sys.stderr, flush=True)
        r = subprocess_row(["--shape", str(index), "--n", str(n), "--seconds", str(seconds)])
        one, two = r["escalate 1"], r.get("escalate 2", r["escalate 1"])
        ratios = (one / r["np.random"], one / r["xoshiro"], two / one)
        met["np"] &= ratios[0] >= 1.5
        met["xoshiro"] &= ratios[1] >= 0.5
        met["threads"] &= ratios[2] >= 1.8
        exact = r["exact"]
        se = math.sqrt(exact * (1 - exact) / r["n"])
        z = ", ".join(
            f"{(r[f'{k} p'] - exact) / se:+.1f}" for k in ("escalate 1", "np.random", "xoshiro")
        )
        lines.append(
            f"| {shape.name} | {r['n']:,} | {_fmt_rate(one)} | {_fmt_rate(two)} "
            f"| {_fmt_rate(r['np.random'])} "
            f"| {_fmt_rate(r['xoshiro'])} | {ratios[0]:.2f}x | {ratios[1]:.2f}x "
            f"| {ratios[2]:.2f}x | {exact:.4f}; {z} |"
        )
    lines += [
        "",
        "| target, on every generated chain | met |",
        "|---|:---:|",
        f"| 1 thread at least 1.5x the hand-written np.random loop | "
        f"{'yes' if met['np'] else 'no'} |",
        f"| 1 thread within 2x of the hand-written xoshiro loop | "
        f"{'yes' if met['xoshiro'] else 'no'} |",
        f"| 2 threads at least 1.8x one | {'yes' if met['threads'] else 'no'} |",
    ]
    return "\n".join(lines)


def worlds_table(quick: bool) -> tuple[str, float]:
    """``solve --worlds 2000`` against the naive expm per world (timed on fewer worlds: it is
    the same work for each)."""
    worlds = 100 if quick else 2000
    ours = subprocess_row(["--worlds-method", "escalate", "--n", str(worlds)])
    naive = subprocess_row(["--worlds-method", "naive", "--n", str(20 if quick else 300)])
    speedup = naive["per_world"] / ours["per_world"]
    lines = [
        "| method | worlds timed | per world (ms) | 2,000 worlds (s) | what it gives |",
        "|---|---:|---:|---:|---|",
        f"| escalate exact worlds (`solve --worlds`) | {ours['worlds']:,} "
        f"| {1e3 * ours['per_world']:.2f} | {2000 * ours['per_world']:.1f} "
        "| every horizon metric: p_reached, p_at_horizon, time_in, mean time to reach, "
        "p_fired, p_on_at_horizon, time_on |",
        f"| naive: one `scipy.linalg.expm` of the joint generator per world | {naive['worlds']:,} "
        f"| {1e3 * naive['per_world']:.2f} | {2000 * naive['per_world']:.1f} "
        "| the distribution at the horizon only |",
        "",
        f"escalate is {speedup:.1f}x faster per world (target: at least 4x).",
    ]
    return "\n".join(lines), naive["per_world"]


def worlds_engine_table(quick: bool, unit: float) -> str:
    """The forecasting loop in units of the naive expm per world (``unit``, seconds, measured
    in the same run): exact worlds, calibrate, nowcast and Morris as a user runs them (whole
    processes, the kernels cached), and the peak memory of many worlds against few."""
    escalate = escalate_command()
    forecasting = VENEZUELA.parent / "forecasting"
    worlds, prior, calibrated, many = (200, 100, 400, 10_000) if quick else (
        2000, 1000, 4000, 100_000)  # fmt: skip

    def process(*args: str) -> float:  # the kernels are cached by the rows before
        began = time.perf_counter()
        subprocess.run([*escalate, *args], capture_output=True, check=True)
        return time.perf_counter() - began

    exact = subprocess_row(["--worlds-method", "escalate", "--n", str(worlds)])
    few = subprocess_row(["--worlds-method", "escalate", "--n", "1000"])
    lots = subprocess_row(["--worlds-method", "escalate", "--n", str(many)])
    calibrate = process(
        "calibrate",
        str(VENEZUELA),
        str(forecasting / "venezuela-targets.yaml"),
        "--worlds",
        str(calibrated),
        "--seed",
        "1",
        "--format",
        "json",
    )
    process(
        "nowcast",
        str(VENEZUELA),
        str(forecasting / "venezuela-observed.yaml"),
        "--worlds",
        "20",
        "--format",
        "json",
    )  # fmt: skip  (its own kernels, compiled)
    nowcast = process(
        "nowcast",
        str(VENEZUELA),
        str(forecasting / "venezuela-observed.yaml"),
        "--worlds",
        str(prior),
        "--seed",
        "1",
        "--format",
        "json",
    )
    morris = process("sensitivity", str(VENEZUELA), "--method", "morris", "--samples", "4",
                     "--format", "json")  # fmt: skip
    record = forecasting / "venezuela-record.yaml"
    one_nowcast = process("nowcast", str(VENEZUELA), str(record), "--worlds", str(prior),
                          "--seed", "1", "--format", "json")  # fmt: skip
    backtest = process("backtest", str(VENEZUELA), str(record), "--worlds", str(prior), "--seed",
                       "1", "--origins", "0,4,20,33,57,59", "--format", "json")  # fmt: skip
    rows = [
        (f"`run_worlds(venezuela, {worlds:,})` exact, every metric: naive expm per world over "
         "escalate's", unit / exact["per_world"], ">= 10x (moonshot 20x)", lambda v: v >= 10),
        (f"`escalate calibrate` (shipped targets), {calibrated:,} worlds, whole process: expm "
         "per world", calibrate / (calibrated * unit), "<= 0.25", lambda v: v <= 0.25),
        (f"`escalate nowcast` (shipped observations), {prior:,} prior worlds, whole process: "
         "expm per world", nowcast / (prior * unit), "<= 0.3", lambda v: v <= 0.3),
        ("`escalate sensitivity --method morris --samples 4`, whole process: expm",
         morris / unit, "<= 1,000", lambda v: v <= 1000),
        (f"`escalate backtest` of the shipped record, 6 origins, {prior:,} worlds, over one "
         "nowcast of it", backtest / one_nowcast, "<= 6", lambda v: v <= 6),
        (f"peak memory, {many:,} exact worlds over 1,000", lots["peak_kb"] / few["peak_kb"],
         "<= 1.5", lambda v: v <= 1.5),
    ]  # fmt: skip
    lines = [
        f"The unit: the naive expm per world above, {1e3 * unit:.1f} ms. Whole processes: "
        f"calibrate {calibrate:.1f} s, nowcast {nowcast:.1f} s, Morris {morris:.1f} s, "
        f"backtest {backtest:.1f} s against a nowcast of the record {one_nowcast:.1f} s.",
        "",
        "| measure | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    lines += [f"| {label} | {value:.3g} | {goal} | {'yes' if met(value) else 'no'} |"
              for label, value, goal, met in rows]  # fmt: skip
    return "\n".join(lines)


def startup_table(quick: bool) -> tuple[str, dict]:
    """Whole processes, as a user starts them: the bare import of escalate's dependencies beside
    ``escalate run -n 1e5`` and ``escalate solve`` of the shipped scenario (kernel cached),
    alternated, medians (the speed targets, start-up)."""
    escalate = escalate_command()
    commands = {
        f'bare import (`python -c "{BARE_IMPORT}"`)': [sys.executable, "-c", BARE_IMPORT],
        "`escalate run scenarios/venezuela.yaml -n 1e5`": [
            *escalate,
            "run",
            str(VENEZUELA),
            "-n",
            "1e5",
            "--seed",
            "1",
        ],
        "`escalate solve scenarios/venezuela.yaml`": [*escalate, "solve", str(VENEZUELA)],
    }
    for command in commands.values():  # warm: compiled kernel cached, files in the page cache
        subprocess.run(command, capture_output=True, check=True)
    walls: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(3 if quick else 9):
        for label, command in commands.items():
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            walls[label].append(time.perf_counter() - began)
    medians = {label: statistics.median(w) for label, w in walls.items()}
    bare = next(iter(medians.values()))
    lines = ["| process | median wall (s) | x the bare import |", "|---|---:|---:|"]
    lines += [f"| {label} | {wall:.3f} | {wall / bare:.2f}x |" for label, wall in medians.items()]
    run, solve = list(medians.values())[1:]
    return "\n".join(lines), {"run": run / bare, "solve": solve / bare}


def startup_targets(ratios: dict) -> str:
    checks = [
        ("a second process's `run -n 1e5` at most 2x the bare import", ratios["run"], 2.0),
        ("`solve` at most 1.5x the bare import", ratios["solve"], 1.5),
    ]
    lines = ["| target | measured | met |", "|---|---:|:---:|"]
    lines += [f"| {t} | {v:.2f}x | {'yes' if v <= goal else 'no'} |" for t, v, goal in checks]
    return "\n".join(lines)


def scaling_tables(quick: bool) -> tuple[str, dict]:
    sizes = [10**4, 10**5, 10**6, 10**7] + ([] if quick else [10**8])
    lines = ["| trajectories | wall (s) | trajectories/s | peak memory (MB) |",
             "|---:|---:|---:|---:|"]  # fmt: skip
    peaks = {}
    for n in sizes:
        print(f"  scaling n={n:,} ...", file=sys.stderr, flush=True)
        r = subprocess_row(["--scale", "n", "--n", str(n)])
        peaks[n] = r["peak_kb"]
        lines.append(
            f"| {n:,} | {r['wall']:.3f} | {_fmt_rate(n / r['wall'])} | {r['peak_kb'] / 1024:,.0f} |"
        )
    out = ["### Trajectories (reference chain, all threads)", "", *lines, ""]
    n = 200_000 if quick else 2_000_000
    for axis, values, label in (
        ("horizon", [30, 365, 730, 3650], "Horizon (days; reference chain)"),
        ("stages", [5, 10, 20, 50], "Stages (a ladder with two triggers)"),
        ("triggers", [0, 1, 2, 4, 8], "Triggers (a 10-stage ladder)"),
    ):
        lines = [f"| {axis} | wall (s) | trajectories/s | P(war) ± SE |", "|---:|---:|---:|---:|"]
        for v in values:
            print(f"  scaling {axis}={v} ...", file=sys.stderr, flush=True)
            r = subprocess_row(["--scale", axis, "--value", str(v), "--n", str(n)])
            lines.append(
                f"| {v} | {r['wall']:.3f} | {_fmt_rate(n / r['wall'])} "
                f"| {r['p']:.4f} ± {r['se']:.4f} |"
            )
        out += [f"### {label}, {n:,} trajectories", "", *lines, ""]
    return "\n".join(out), peaks


def machine() -> str:
    import numba
    import numpy

    import escalate

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
        f"escalate {escalate.__version__}"
    )


def calibration_table(by_chain: dict[str, list[dict]]) -> str:
    """The same peers on each chain beside the figures measured when the targets were set: a
    chain whose peers run slower than those is at least as much work a trajectory."""
    names = list(by_chain)
    lines = [
        f"| peer | when the targets were set | {' | '.join(f'{c} chain' for c in names)} |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for name, design in REFERENCE_RATES.items():
        cells = [
            _fmt_rate(next(r["rate"] for r in by_chain[c] if r["name"] == name)) for c in names
        ]
        lines.append(f"| {name} | {design} | {' | '.join(cells)} |")
    return "\n".join(lines)


def targets(rows: list[dict], compiled: dict | None, peaks: dict | None) -> str:
    by = {r["name"]: r for r in rows}
    two, one = by["escalate, 2 threads"]["rate"], by["escalate, 1 thread"]["rate"]
    bare = by["numba loop, numba np.random (1 thread)"]["rate"]
    stepped = max(r["rate"] for r in rows if "daily" in r["name"] or "day-stepped" in r["name"])
    python = by["pure-Python event loop"]["rate"]
    checks = [
        ("at least 20 million trajectories/s on 2 threads", two / 1e6, 20, f"{two / 1e6:.2f} M/s"),
        ("1 thread at least 2.5x the numba np.random loop", one / bare, 2.5, f"{one / bare:.2f}x"),
        ("at least 100x every day-stepped peer", two / stepped, 100, f"{two / stepped:,.0f}x"),
        ("at least 20x the pure-Python event loop", two / python, 20, f"{two / python:,.0f}x"),
        ("2 threads at least 1.8x one", two / one, 1.8, f"{two / one:.2f}x"),
        (
            "a second process's first result in under 2 s",
            2.0 / compiled["cached (second process)"] if compiled else 0.0,
            1.0,
            f"{compiled['cached (second process)']:.2f} s" if compiled else "-",
        ),
    ]
    if compiled is None:  # measured once, on the reference chain
        checks.pop()
    if peaks:
        largest = max(peaks)
        growth = peaks[largest] / peaks[10**6]
        checks.append(
            (
                f"peak memory at {largest:.0e} within 10% of 1e6",
                1.1 / growth,
                1.0,
                f"{peaks[10**6] / 1024:,.0f} -> {peaks[largest] / 1024:,.0f} MB "
                f"({growth - 1:+.1%})",
            )
        )
    lines = ["| target | measured | met |", "|---|---:|:---:|"]
    lines += [f"| {t} | {shown} | {'yes' if v >= goal else 'no'} |" for t, v, goal, shown in checks]
    return "\n".join(lines)
