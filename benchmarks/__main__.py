"""escalate against its peers on the reference chain, and how it scales.

Run ``python -m benchmarks`` (a few minutes on 2 cores; ``--quick`` for a smoke run). Every row
runs in its own process, so its peak memory (``ru_maxrss``) is its own and numba compiles from
the on-disk cache as a user's second run would; times are medians over repeats, after one warm
call. The table is printed and written to ``benchmarks/RESULTS.md`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from benchmarks.explorer import explorer_section
from benchmarks.measure import (
    HERE,
    SEED,
    exact_p,
    measure_row,
    measure_scale,
    measure_scenario,
    measure_shape,
    measure_worlds,
)
from benchmarks.particles import particles_section
from benchmarks.tables import (
    calibration_table,
    chain_sizes,
    chain_sizes_text,
    chains_table,
    compile_table,
    language_table,
    machine,
    peer_table,
    scaling_tables,
    startup_table,
    startup_targets,
    targets,
    venezuela_table,
    worlds_engine_table,
    worlds_table,
)

# --- one row, in its own process -------------------------------------------------------------


# --- the tables --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--scale", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--worlds-method", help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--value", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--chain", default="reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.row:
        print(json.dumps(measure_row(args.row, args.n or None, args.repeats, args.chain)))
        return
    if args.floor:
        from benchmarks.peers import rng_floor

        count = round(args.floor * args.n)
        rng_floor(1_000, SEED)
        walls = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            rng_floor(count, SEED)
            walls.append(time.perf_counter() - began)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"n": args.n, "wall": statistics.median(walls), "value": None,
                          "peak_kb": peak}))  # fmt: skip
        return
    if args.scale:
        print(json.dumps(measure_scale(args.scale, args.value or 0, args.n)))
        return
    if args.shape is not None:
        print(json.dumps(measure_shape(args.shape, args.n, args.seconds)))
        return
    if args.worlds_method is not None:
        print(json.dumps(measure_worlds(args.worlds_method, args.n)))
        return
    if args.scenario is not None:
        print(json.dumps(measure_scenario(Path(args.scenario), args.stage, args.threads, args.n)))
        return

    began = time.perf_counter()
    print("benchmarks: peers on the reference chain and on the chain with cycles ...",
          file=sys.stderr)  # fmt: skip
    table, rows = peer_table("reference", args.quick)
    cycles_table, cycles_rows = peer_table("cycles", args.quick)
    print("benchmarks: the Venezuela scenario ...", file=sys.stderr)
    venezuela = venezuela_table(args.quick)
    print("benchmarks: the language's new keys ...", file=sys.stderr)
    language = language_table(args.quick)
    print("benchmarks: compilation ...", file=sys.stderr)
    compiled_table, compiled = compile_table()
    print("benchmarks: generated chains ...", file=sys.stderr)
    chains = chains_table(args.quick)
    print("benchmarks: exact worlds ...", file=sys.stderr)
    worlds, unit = worlds_table(args.quick)
    print("benchmarks: the worlds engine ...", file=sys.stderr)
    worlds_engine = worlds_engine_table(args.quick, unit)
    print("benchmarks: start-up ...", file=sys.stderr)
    startup, startup_ratios = startup_table(args.quick)
    print("benchmarks: scaling ...", file=sys.stderr)
    scaling, peaks = scaling_tables(args.quick)
    from escalate.engine.kernels import GUIDE_WIDTH

    today = datetime.date.today().isoformat()
    report = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Run {today} with `python -m benchmarks{' --quick' if args.quick else ''}` "
            f"({time.perf_counter() - began:.0f} s in all) on: {machine()}.",
            "",
            "The reference chain is `benchmarks/reference.yaml` (6 stages, 1 trigger, 730 days; "
            f"exact P(war by 730) = {exact_p():.6f}, median time to war 163.61 days, as in the "
            "project's speed targets). Every row simulates that same model; day-stepped peers use"
            " its exact daily matrix. Each row runs in its own process (peak memory is that "
            "process's); times are medians after a warm call. `benchmarks/cycles.yaml` is a "
            "heavier chain with the same two figures (two back-and-forth cycles, 6.1 stages "
            "entered a trajectory against 2.9), measured the same way below.",
            "",
            "## Peers, reference chain",
            "",
            table,
            "",
            "## Targets, reference chain",
            "",
            targets(rows, compiled, peaks),
            "",
            "## How much work a trajectory is: the peers beside the figures of the targets",
            "",
            "The speed targets give their chain's two figures, not its rates, and what each peer "
            "measured on it. Where an event-driven peer runs slower on our chain than that "
            "figure, a trajectory of our chain is likely more work than one of theirs. A hint, "
            "not a proof: our peers are not the code measured then (the day-stepped ones run "
            "faster than its figures on either chain, whose cost hardly depends on the chain), "
            "which is why both chains are measured.",
            "",
            calibration_table({"reference": rows, "cycles": cycles_rows}),
            "",
            "## Peers, chain with cycles (`benchmarks/cycles.yaml`)",
            "",
            cycles_table,
            "",
            "## Targets, chain with cycles (compilation and memory: see the reference chain)",
            "",
            targets(cycles_rows, None, None),
            "",
            "## The Venezuela scenario (`scenarios/venezuela.yaml`)",
            "",
            venezuela,
            "",
            "## What the richer language costs (`benchmarks/language.yaml`)",
            "",
            "The reference chain beside the same chain with every key of the richer language "
            "(a start date and a date horizon, two more triggers, an onset `when`, offsets, a "
            "date `at`, effects on, off and with a probability): its trajectories do more (the "
            "triggers switch on and off), so the ratio is the cost of the features used, not of "
            "the engine carrying them.",
            "",
            language,
            "",
            "## Compilation",
            "",
            compiled_table,
            "",
            "## Generated chains against loops written for each (`benchmarks/chains.py`)",
            "",
            "Chains of varied shape (back-steps and cycles, 1 to 8 triggers, per-stage onsets, "
            "onset ratios, offsets, effects); for each, two numba event loops generated for "
            "that chain alone (every rate a constant, one branch per stage, no tables, only the "
            "count of war), one with numba's `np.random`, one with the inline xoshiro256** "
            "generator escalate uses. escalate runs with every accumulator on; it chooses a "
            "race's event by a scan of the race's row of cumulative hazards, or, when a race "
            f"may have more than {GUIDE_WIDTH} events (the 8-trigger chain), by a guide table. "
            + chain_sizes_text(*chain_sizes(args.quick)),
            "",
            chains,
            "",
            "## Exact worlds: every metric of 2,000 parameter sets of the shipped scenario",
            "",
            worlds,
            "",
            "## The worlds engine: the forecasting loop in units of the naive expm per world",
            "",
            worlds_engine,
            "",
            "## Start-up: whole processes against the bare import of the dependencies",
            "",
            "What a user waits for, each process started afresh (the kernel already compiled "
            "and cached), alternated and given as medians; the ratio to the bare import of "
            "the dependencies holds from one day to the next where the seconds do not.",
            "",
            startup,
            "",
            startup_targets(startup_ratios),
            "",
            explorer_section(args.quick),
            particles_section(args.quick),
            "## Scaling",
            "",
            scaling,
        ]
    )
    print(report)
    if not args.no_write and not args.quick:
        (HERE / "RESULTS.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
