"""Fuzzing compile, simulate and solve: random scenarios with extreme numbers either run with
sane figures or fail with one clear EscalateError (never another exception, never a hang).

Sane: probabilities in [0, 1], reach curves non-decreasing, occupancy summing to 1 at every
grid point, time in stage within [0, horizon]. Extreme: rates from 1e-300 to 1e300, horizons
from 1e-9 to 1e12, up to 500 stages and 30 triggers, tight cycles. ``ESCALATE_FUZZ_EXAMPLES``
sets the number of examples (default 60: well under a minute).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import escalate
from escalate.errors import EscalateError

EXAMPLES = int(os.environ.get("ESCALATE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RATES = [1e-300, 1e-12, 1e-3, 0.05, 1.0, 30.0, 1e6, 1e300]
HORIZONS = [1e-9, 1e-3, 1.0, 730.0, 1e5, 1e12]
DELAYS = [
    "{dist: fixed, value: 0.5}",
    "{dist: uniform, low: 0, high: 2}",
    "{dist: gamma, mean: 3, sd: 1e-6}",
    "{dist: weibull, shape: 0.1, scale: 1e6}",
    "{dist: lognormal, median: 1e-9, p90: 1}",
]


@st.composite
def extreme_scenarios(draw):
    n_stages = draw(st.sampled_from([2, 3, 5, 8, 500]))
    n_triggers = draw(st.sampled_from([0, 1, 3, 30]))
    horizon = draw(st.sampled_from(HORIZONS))
    terminal = {n_stages - 1} | set(draw(st.sets(st.integers(1, n_stages - 1), max_size=2)))
    lines = [f"scenario: extreme\nhorizon: {horizon!r}\nstart: s0\nstages:"]
    lines += [f"  s{i}: {{terminal: {str(i in terminal).lower()}}}" for i in range(n_stages)]
    if n_triggers:
        lines.append("triggers:")
        for k in range(n_triggers):
            onset = draw(st.sampled_from(["", ", onset: {rate: %r}", ", onset: {at: %r}"]))
            if onset:
                onset = onset % draw(st.sampled_from(RATES if "rate" in onset else HORIZONS))
            lines.append(f"  t{k}: {{initial: {draw(st.sampled_from([0, 0.5, 1]))}{onset}}}")
    lines.append("transitions:")
    live = [i for i in range(n_stages) if i not in terminal]
    for i in live:  # a chain forward, a cycle back, and sometimes a non-exponential delay
        forward = f"s{i + 1}"
        timing = draw(
            st.one_of(
                st.sampled_from(RATES).map(lambda r: f"rate: {r!r}"),
                st.sampled_from(DELAYS).map(lambda d: f"after: {d}"),
            )
        )
        extra = ""
        if n_triggers and draw(st.booleans()):
            k = draw(st.integers(0, n_triggers - 1))
            extra = draw(st.sampled_from([f", when: {{t{k}: 0}}", f", when: {{t{k}: 1e6}}",
                                          f", requires: [t{k}]"]))  # fmt: skip
        lines.append(f"  - {{from: s{i}, to: {forward}, {timing}{extra}}}")
        if i > 0 and draw(st.booleans()):
            lines.append(
                f"  - {{from: s{i}, to: s{i - 1}, rate: {draw(st.sampled_from(RATES))!r}}}"
            )
    if not live:
        lines.append("  - {from: s0, to: s1, rate: 1}")
    return "\n".join(lines) + "\n"


def assert_sane(result) -> None:
    grid, names, reached, occupancy = result.curve_arrays  # what result.curves tabulates
    for name, s in result.stages.items():
        for p in (s.p_reached, s.p_at_horizon):
            assert 0.0 <= p <= 1.0, (name, p)
        assert -1e-9 * result.horizon <= s.time_in <= result.horizon * (1 + 1e-9), (name, s.time_in)
    assert len(names) == len(result.stages) and reached.shape == (len(names), len(grid))
    assert np.all(np.diff(reached, axis=1) >= -1e-9)
    assert np.allclose(occupancy.sum(axis=0), 1.0, atol=1e-6)
    for t in result.triggers.values():
        assert 0.0 <= t["p_fired"] <= 1.0


@pytest.mark.slow
@FUZZ
@given(extreme_scenarios())
def test_extreme_scenarios_run_or_fail_cleanly(text):
    try:
        model = escalate.loads(text, "fuzz.yaml")
    except EscalateError:
        return
    # any other exception than EscalateError fails the test
    with contextlib.suppress(EscalateError):
        assert_sane(escalate.simulate(model, 50, seed=1))  # sane figures, not precise ones
    with contextlib.suppress(EscalateError):
        assert_sane(escalate.solve(model))
