"""Nowcasting by particles against the exact nowcast, as a user runs them (whole processes).

``python -m benchmarks.particles`` times, alternated and repeated, three installed commands on
1,000 prior worlds: the exact nowcast of the shipped Venezuela observations, the same by
particles (``--method particles``), and the Essequibo ladder's illustrative observations
(particles: a log-normal delay). The rows are ratios to the exact nowcast measured in the same
run (this machine's speed drifts from day to day), with the particles per world and the
standard deviation of a world's log-likelihood estimate each run chose. It writes its section
into ``benchmarks/RESULTS.md``; ``python -m benchmarks`` writes it too.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.measure import escalate_command, write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TITLE = "## Nowcasting by particles against the exact nowcast"
SCENARIOS = ROOT / "scenarios"
FORECASTING = SCENARIOS / "forecasting"
RUNS = {
    "exact": [SCENARIOS / "venezuela.yaml", FORECASTING / "venezuela-observed.yaml",
              "--method", "exact"],
    "venezuela by particles": [SCENARIOS / "venezuela.yaml",
                               FORECASTING / "venezuela-observed.yaml", "--method", "particles"],
    "essequibo by particles": [SCENARIOS / "essequibo.yaml",
                               FORECASTING / "essequibo-observed.yaml"],
}  # fmt: skip
TARGETS = {"venezuela by particles": 2.0, "essequibo by particles": 2.0}


def _once(args: list, worlds: int) -> tuple[float, dict]:
    began = time.perf_counter()
    done = subprocess.run([*escalate_command(), "nowcast", *map(str, args), "--worlds", str(worlds),
                           "--seed", "1", "--format", "json"], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return time.perf_counter() - began, json.loads(done.stdout)


def particles_section(quick: bool = False) -> str:
    """The section of RESULTS.md: per run its median seconds and its ratio to the exact."""
    worlds, repeats = (200, 1) if quick else (1000, 3)
    for args in RUNS.values():  # the kernels compiled and cached before any timing
        _once(args, 20)
    seconds: dict[str, list[float]] = {name: [] for name in RUNS}
    summaries = {}
    for _ in range(repeats):
        for name, args in RUNS.items():
            elapsed, summaries[name] = _once(args, worlds)
            seconds[name].append(elapsed)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    lines = [
        TITLE,
        "",
        f"`escalate nowcast ... --worlds {worlds:,} --seed 1`, whole processes, alternated, "
        f"medians of {repeats}; the exact nowcast of the shipped Venezuela observations took "
        f"{median['exact']:.1f} s. Particles per world and the standard deviation of a world's "
        "log-likelihood estimate are the pilot's choice (`--particles` sets them).",
        "",
        "| nowcast | seconds | over the exact | target | particles | log-likelihood sd | met |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name in RUNS:
        ratio = median[name] / median["exact"]
        target = TARGETS.get(name)
        s = summaries[name]
        sd = s.get("log_likelihood_sd")
        met = "" if target is None else ("yes" if ratio <= target else "no")
        lines.append(
            f"| {name} | {median[name]:.2f} | {ratio:.2f} | "
            f"{'' if target is None else f'<= {target:g}'} | {s.get('particles') or ''} | "
            f"{'' if sd is None else f'{sd:.3f}'} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    section = particles_section("--quick" in args)
    print(section)
    if "--no-write" not in args:
        write_section(TITLE, section)


if __name__ == "__main__":
    main()
