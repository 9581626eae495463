"""Start-up: the commands load only what they need, and the executable, which leaves the
process without tearing the interpreter down, still flushes every byte and keeps its exit
status. Exact quantiles (found without scipy.optimize) against closed forms."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import escalate

from .conftest import ESCALATE, ROOT

VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"
HEAVY = ("scipy.stats", "scipy.optimize", "pandas", "matplotlib", "SALib", "dask", "distributed")

PROBE = """
import json, sys
from escalate.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    sys.stdout.flush()
loaded = sorted(m for m in {heavy!r} if m in sys.modules)
print("LOADED " + json.dumps(loaded), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=(*HEAVY, "numba")), *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return set(json.loads(line.removeprefix("LOADED ")))


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("validate", str(VENEZUELA)), set()),
        (("solve", str(VENEZUELA)), set()),
        (("run", str(VENEZUELA), "-n", "2e4", "--seed", "1"), {"numba"}),
    ],
    ids=["validate", "solve", "run"],
)
def test_a_command_loads_only_what_it_needs(args, allowed):
    assert loaded_by(*args) == allowed


def test_the_executable_flushes_everything_and_keeps_its_status(tmp_path):
    done = subprocess.run(
        [ESCALATE, "solve", str(VENEZUELA), "--format", "json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stages"]["full_scale_war"]["p_reached"] > 0  # whole JSON
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: bad\nhorizon: -1\n")
    failed = subprocess.run([ESCALATE, "validate", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2 and "bad.yaml" in failed.stderr
    version = subprocess.run([ESCALATE, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "escalate" in version.stdout


def test_exact_quantiles_match_the_closed_form_across_a_jump():
    """One transition at rate r, three times faster from the `at` time 30.5: the quantiles of
    the time to reach, conditional on reaching, solve F(t) = q F(T) in closed form; the
    median falls inside the grid step that holds the jump, where F has a kink."""
    r, tau, horizon = 0.02, 30.5, 60.0
    model = escalate.loads(f"""
scenario: kink
horizon: {horizon}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  faster: {{onset: {{at: {tau}}}}}
transitions:
  - {{from: s, to: end, rate: {r}, when: {{faster: 3}}}}
""")

    def cumulative(t: float) -> float:
        exposure = r * t if t <= tau else r * tau + 3 * r * (t - tau)
        return 1 - math.exp(-exposure)

    def inverse(p: float) -> float:
        exposure = -math.log(1 - p)
        return exposure / r if exposure <= r * tau else tau + (exposure - r * tau) / (3 * r)

    final = cumulative(horizon)
    ttr = escalate.solve(model).stages["end"].time_to_reach
    for q in (0.1, 0.5, 0.9):
        assert abs(ttr[f"p{round(q * 100)}"] - inverse(q * final)) < 1e-9, q
    assert 30 < inverse(0.5 * final) < 31  # the median's grid step holds the jump at 30.5


def test_the_executable_keeps_its_status_with_a_closed_stream():
    """A stream closed by the caller (``>&-``) is None inside Python: nothing to flush."""
    for redirect in (">&-", "2>&-"):
        done = subprocess.run(
            f"'{ESCALATE}' validate '{VENEZUELA}' {redirect}", shell=True, capture_output=True
        )
        assert done.returncode == 0, (redirect, done.stderr)


SERIES_PROBE = """
import sys
import escalate
from escalate.engine.evaluate import evaluate
model = escalate.load(sys.argv[1])
evaluate(model, {{}}, ["p_reached:full_scale_war"], engine="exact", numba_series={flag})
print("escalate.engine.uniformize" in sys.modules)
"""


@pytest.mark.parametrize("flag", [False, True])
def test_only_jobs_of_many_worlds_load_the_numba_series(flag):
    """A sweep or a tornado evaluates a few exact points: numba would cost more than it saves."""
    done = subprocess.run(
        [sys.executable, "-c", SERIES_PROBE.format(flag=flag), str(VENEZUELA)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(flag)


def test_the_first_compilation_says_so_before_it_starts(tmp_path):
    """With an empty numba cache the kernel compiles for about 45 s: `escalate run` says so on
    stderr before it compiles (the test reads that line, then stops the process rather than
    wait); with the cache warm, as here, nothing is said."""
    import os
    import selectors

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [ESCALATE, "run", VENEZUELA, "-n", "1e5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        selector = selectors.DefaultSelector()
        selector.register(process.stderr, selectors.EVENT_READ)
        assert selector.select(timeout=60), "nothing on stderr within 60 s"
        line = process.stderr.readline().decode()
        assert process.poll() is None  # still compiling: the line came before the result
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert line.startswith("compiling the simulation kernel once (about 45 s on 2 cores;"), line
    for _ in range(2):  # the first fills the project's cache if no test has yet
        warm = subprocess.run([ESCALATE, "run", VENEZUELA, "-n", "1e4"], capture_output=True,
                              text=True)  # fmt: skip
    assert warm.returncode == 0 and "compiling" not in warm.stderr, warm.stderr
