"""The Monte Carlo engine against closed forms: fixed seeds, tolerances of 4 standard errors.

Each scenario is small enough for its answer to be written down: survival of competing
exponentials, piecewise hazards when a trigger switches on, distribution functions of the
non-exponential delays, and (for the cycle) the matrix exponential of its generator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, linalg, stats

import escalate

N = 200_000
TOL = 4.0  # standard errors


def run(text: str, n: int = N, seed: int = 11, **kwargs) -> escalate.Result:
    return escalate.simulate(escalate.loads(text), n, seed, **kwargs)


def chain(transitions: str, *, horizon=100, start="a", triggers="", stages=None) -> str:
    stages = stages or "  a: {}\n  b: {terminal: true}\n  c: {terminal: true}\n"
    text = f"scenario: t\nhorizon: {horizon}\nstart: {start}\nstages:\n{stages}"
    if triggers:
        text += f"triggers:\n{triggers}"
    return text + f"transitions:\n{transitions}"


def assert_p(result, stage, exact, what="p_reached"):
    s = result.stages[stage]
    value, se = getattr(s, what), getattr(s, f"{what}_se")
    assert abs(value - exact) <= TOL * se + 1e-12, (stage, what, value, exact, se)


def curve_at(result, stage, curve, t):
    c = result.curves[(result.curves.stage == stage) & (result.curves.curve == curve)]
    return float(c.value[np.isclose(c.t, t)].iloc[0])


def assert_curve(result, stage, curve, t, exact):
    p = curve_at(result, stage, curve, t)
    se = math.sqrt(max(exact * (1 - exact), 1e-12) / result.trajectories)
    assert abs(p - exact) <= TOL * se, (stage, curve, t, p, exact)


def survival_with_switch(r0: float, r1: float, lam: float, h: float) -> float:
    """P(no transition by h): hazard r0 until an exponential(lam) switch, r1 after."""
    if math.isclose(r0 + lam, r1):
        return math.exp(-(r0 + lam) * h) * (1 + lam * h)
    d = r0 + lam - r1
    return math.exp(-(r0 + lam) * h) + lam * math.exp(-r1 * h) * (1 - math.exp(-d * h)) / d


def test_one_exponential_transition():
    r, h = 0.01, 100
    result = run(chain("  - {from: a, to: b, rate: 0.01}"))
    assert_p(result, "b", 1 - math.exp(-r * h))
    assert_p(result, "a", math.exp(-r * h), "p_at_horizon")
    assert_p(result, "a", 1.0)
    assert_curve(result, "b", "reached", 50, 1 - math.exp(-r * 50))
    assert_curve(result, "a", "occupancy", 50, math.exp(-r * 50))
    assert_curve(result, "b", "occupancy", 100, 1 - math.exp(-r * h))
    s = result.stages["a"]
    assert abs(s.time_in - (1 - math.exp(-r * h)) / r) <= TOL * s.time_in_se
    # time in a terminal stage runs until the horizon
    expected_in_b = h - (1 - math.exp(-r * h)) / r
    assert abs(result.stages["b"].time_in - expected_in_b) <= TOL * result.stages["b"].time_in_se


def test_time_to_reach_quantiles_match_the_analytic_quantile():
    r, h = 0.01, 100
    result = run(chain("  - {from: a, to: b, rate: 0.01}"))
    ttr = result.stages["b"].time_to_reach
    reach = 1 - math.exp(-r * h)
    bin_width = h / 4096
    for q in (0.1, 0.5, 0.9):
        exact = -math.log(1 - q * reach) / r  # quantile of T given T <= h
        lo, hi = ttr[f"p{round(q * 100)}_ci"]
        se = (hi - lo) / (2 * 1.96)
        assert abs(ttr[f"p{round(q * 100)}"] - exact) <= TOL * se + bin_width, (q, ttr)
    mean = 1 / r - h * math.exp(-r * h) / reach
    assert abs(ttr["mean"] - mean) <= TOL * ttr["mean_se"]
    assert result.stages["a"].time_to_reach["p50"] == 0.0  # the start stage, at t = 0


def test_competing_exponentials():
    r1, r2, h = 0.02, 0.03, 50
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.02}\n  - {from: a, to: c, mean: 33.333333333333336}",
            horizon=h,
        )
    )
    total = 1 - math.exp(-(r1 + r2) * h)
    assert_p(result, "b", r1 / (r1 + r2) * total)
    assert_p(result, "c", r2 / (r1 + r2) * total)


def test_chance_within():
    result = run(chain("  - {from: a, to: b, chance: 0.3, within: 20}", horizon=40))
    assert_p(result, "b", 1 - 0.7**2)
    assert_curve(result, "b", "reached", 20, 0.3)


TRIGGER = "  t:\n    initial: {initial}\n    onset: {onset}\n"


def test_trigger_already_on_with_initial():
    r, k, p, h = 0.01, 3.0, 0.4, 100
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.01, when: {t: 3}}",
            triggers="  t: {initial: 0.4}\n",
        )
    )
    assert_p(result, "b", p * (1 - math.exp(-k * r * h)) + (1 - p) * (1 - math.exp(-r * h)))
    t = result.triggers["t"]
    assert abs(t["p_fired"] - p) <= TOL * t["p_fired_se"]


def test_trigger_onset_changes_the_hazard():
    r, k, lam, h = 0.01, 4.0, 0.02, 100
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.01, when: {t: 4}}",
            triggers="  t: {onset: {a: {rate: 0.02}}}\n",
        )
    )
    assert_p(result, "b", 1 - survival_with_switch(r, k * r, lam, h))
    fired = lam / (lam + r) * (1 - math.exp(-(lam + r) * h))  # only while still in a
    t = result.triggers["t"]
    assert abs(t["p_fired"] - fired) <= TOL * t["p_fired_se"]


def test_onset_in_every_stage_and_several_triggers_multiply():
    # two triggers, each on from the start, ratios 2 and 3: hazard 6 r
    r, h = 0.005, 100
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.005, when: {t: 2, u: 3}}",
            triggers="  t: {initial: 1}\n  u: {initial: 1, onset: {rate: 0.5}}\n",
        )
    )
    assert_p(result, "b", 1 - math.exp(-6 * r * h))


def test_requires():
    r, lam, h = 0.03, 0.01, 100
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.03, requires: [t]}",
            triggers="  t: {onset: {a: {mean: 100}}}\n",
        )
    )
    assert_p(result, "b", 1 - survival_with_switch(0.0, r, lam, h))


def test_blocking_ratio_zero():
    r, lam, h = 0.02, 0.01, 100
    blocked = run(
        chain(
            "  - {from: a, to: b, rate: 0.02, when: {t: 0}}",
            triggers="  t: {initial: 1}\n",
        )
    )
    assert blocked.stages["b"].p_reached == 0.0
    switched_off = run(
        chain(
            "  - {from: a, to: b, rate: 0.02, when: {t: 0}}",
            triggers="  t: {onset: {a: {rate: 0.01}}}\n",
        )
    )
    assert_p(switched_off, "b", 1 - survival_with_switch(r, 0.0, lam, h))


def test_at_trigger():
    r, k, t0, h = 0.01, 3.0, 40.0, 100
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.01, when: {t: 3}}",
            triggers="  t: {onset: {at: 40}}\n",
        )
    )
    assert_p(result, "b", 1 - math.exp(-r * t0 - k * r * (h - t0)))
    assert_curve(result, "b", "reached", 40, 1 - math.exp(-r * t0))
    t = result.triggers["t"]
    assert abs(t["p_fired"] - math.exp(-r * t0)) <= TOL * t["p_fired_se"]


def test_at_trigger_after_the_horizon_never_fires():
    result = run(
        chain("  - {from: a, to: b, rate: 0.01}", triggers="  t: {onset: {at: 150}}\n"), n=20_000
    )
    assert result.triggers["t"]["p_fired"] == 0.0


def test_fixed_delay_competing_with_exponential():
    r, d = 0.02, 30.0
    result = run(
        chain(
            "  - {from: a, to: b, after: {dist: fixed, value: 30}}\n"
            "  - {from: a, to: c, rate: 0.02}"
        )
    )
    assert_p(result, "c", 1 - math.exp(-r * d))
    assert_p(result, "b", math.exp(-r * d))
    assert result.stages["b"].time_to_reach["p50"] == pytest.approx(d, abs=100 / 4096)
    assert_curve(result, "b", "reached", 29, 0.0)
    assert_curve(result, "b", "reached", 30, math.exp(-r * d))


@pytest.mark.parametrize(
    ("after", "dist"),
    [
        ("{dist: gamma, mean: 40, sd: 15}", stats.gamma(a=(40 / 15) ** 2, scale=15**2 / 40)),
        ("{dist: gamma, mean: 40, sd: 60}", stats.gamma(a=(40 / 60) ** 2, scale=60**2 / 40)),
        ("{dist: weibull, shape: 1.5, scale: 50}", stats.weibull_min(1.5, scale=50)),
        (
            "{dist: lognormal, median: 45, p90: 80}",
            stats.lognorm(math.log(80 / 45) / 1.2815515655446004, scale=45),
        ),
        ("{dist: uniform, low: 10, high: 90}", stats.uniform(10, 80)),
        ("{dist: exponential, mean: 50}", stats.expon(scale=50)),
    ],
    ids=["gamma", "gamma-shape-below-1", "weibull", "lognormal", "uniform", "exponential"],
)
def test_delay_distributions_follow_their_cdf(after, dist):
    h = 60
    result = run(chain(f"  - {{from: a, to: b, after: {after}}}", horizon=h))
    assert_p(result, "b", dist.cdf(h))
    for t in (15, 30, 45):
        assert_curve(result, "b", "reached", t, dist.cdf(t))
    ttr = result.stages["b"].time_to_reach
    exact = dist.ppf(0.5 * dist.cdf(h))
    lo, hi = ttr["p50_ci"]
    assert abs(ttr["p50"] - exact) <= TOL * (hi - lo) / 3.92 + h / 4096


def test_clock_speed_changes_mid_delay():
    # a fixed delay of 30 whose clock runs 3x faster from t = 15 on: fires at 15 + 15/3 = 20
    result = run(
        chain(
            "  - {from: a, to: b, after: {dist: fixed, value: 30}, when: {t: 3}}",
            triggers="  t: {onset: {at: 15}}\n",
        ),
        n=5_000,
    )
    assert result.stages["b"].p_reached == 1.0
    assert result.stages["b"].time_to_reach["p50"] == pytest.approx(20, abs=100 / 4096)


def test_cycle_against_the_matrix_exponential():
    r_ab, r_ba, r_ac, h = 0.05, 0.08, 0.01, 100
    stages = "  a: {}\n  b: {}\n  c: {terminal: true}\n"
    result = run(
        chain(
            "  - {from: a, to: b, rate: 0.05}\n  - {from: b, to: a, rate: 0.08}\n"
            "  - {from: a, to: c, rate: 0.01}",
            stages=stages,
        )
    )
    q = np.array([[-(r_ab + r_ac), r_ab, r_ac], [r_ba, -r_ba, 0.0], [0.0, 0.0, 0.0]])
    p_h = linalg.expm(q * h)
    assert_p(result, "c", p_h[0, 2])
    assert_p(result, "a", p_h[0, 0], "p_at_horizon")
    assert_p(result, "b", p_h[0, 1], "p_at_horizon")
    first_b = q.copy()
    first_b[1] = 0.0  # b absorbing: first passage
    assert_p(result, "b", linalg.expm(first_b * h)[0, 1])
    time_in_a = integrate.quad(lambda t: linalg.expm(q * t)[0, 0], 0, h)[0]
    s = result.stages["a"]
    assert abs(s.time_in - time_in_a) <= TOL * s.time_in_se
    assert_curve(result, "a", "occupancy", 50, linalg.expm(q * 50)[0, 0])
    occupancy_sum = result.curves[result.curves.curve == "occupancy"].groupby("t", observed=True)
    assert np.allclose(occupancy_sum.value.sum(), 1.0)


def test_start_mapping():
    h = 100
    result = run(
        chain(
            "  - {from: a, to: c, rate: 0.01}\n  - {from: b, to: c, rate: 0.03}",
            start="{a: 0.3, b: 0.7}",
            stages="  a: {}\n  b: {}\n  c: {terminal: true}\n",
        )
    )
    assert_p(result, "a", 0.3)
    assert_p(result, "b", 0.7)
    assert_p(result, "c", 0.3 * (1 - math.exp(-0.01 * h)) + 0.7 * (1 - math.exp(-0.03 * h)))
    paths = {tuple(p["path"]): p["p"] for p in result.paths}
    assert set(paths) == {("a",), ("b",), ("a", "c"), ("b", "c")}
    assert sum(paths.values()) == pytest.approx(1.0)


def test_probabilities_zero_and_one():
    result = run(
        chain(
            "  - {from: a, to: b, rate: 1000}", triggers="  t: {initial: 0}\n  u: {initial: 1}\n"
        ),
        n=10_000,
    )
    assert result.stages["b"].p_reached == 1.0
    assert result.stages["c"].p_reached == 0.0
    assert result.stages["c"].time_to_reach["p50"] is None
    assert result.triggers["t"]["p_fired"] == 0.0
    assert result.triggers["u"]["p_fired"] == 1.0


@pytest.mark.parametrize("count", [2, 9])
def test_trigger_onsets_with_and_without_hazard_tables(count):
    """Exponential stages race by tabled hazards up to TABLE_TRIGGERS triggers, and by
    hazards computed as they go beyond: both give the piecewise hazard of the closed form."""
    from escalate.engine.kernels import TABLE_TRIGGERS

    assert (count <= TABLE_TRIGGERS) == (count == 2)
    r0, ratio, lam, h = 0.004, 5.0, 0.02, 100
    # trigger 0 switches on at rate lam and speeds a -> b up; the others never switch on
    triggers = "  t0: {onset: {rate: 0.02}}\n" + "".join(
        f"  t{k}: {{initial: 0, onset: {{at: 1000}}}}\n" for k in range(1, count)
    )
    others = ", ".join(f"t{k}: 3" for k in range(1, count))
    result = run(
        chain(
            f"  - {{from: a, to: b, rate: {r0}, when: {{t0: {ratio}, {others}}}}}",
            triggers=triggers,
        )
    )
    assert_p(result, "b", 1 - survival_with_switch(r0, r0 * ratio, lam, h))
    assert_p(result, "a", survival_with_switch(r0, r0 * ratio, lam, h), "p_at_horizon")
    assert all(result.triggers[f"t{k}"]["p_fired"] == 0 for k in range(1, count))


def test_time_in_stage_sums_a_trajectorys_stays_before_squaring():
    """a and b alternate on fixed delays (4 and 3 days) over 20 days: from a, a trajectory
    spends 4 + 4 + 4 = 12 days in a; from b, 4 + 4 + 3 = 11. The spread of time in a is that
    of a coin flip, sqrt(p (1 - p)); squares of single stays would make it vanish."""
    text = chain(
        "  - {from: a, to: b, after: {dist: fixed, value: 4}}\n"
        "  - {from: b, to: a, after: {dist: fixed, value: 3}}\n",
        horizon=20,
        start="{a: 0.5, b: 0.5}",
        stages="  a: {}\n  b: {}\n",
    )
    n = 4_000
    a = run(text, n=n).stages["a"]
    from_b = 12.0 - a.time_in  # the share of trajectories that started in b
    spread = a.time_in_se * math.sqrt(n)
    assert spread == pytest.approx(math.sqrt(from_b * (1 - from_b)), rel=0.01)


@pytest.mark.parametrize("delay", [0.0001, 0.001, 0.01])
def test_many_short_fixed_stays_add_up_to_the_horizon(delay):
    """Thousands of fixed stays a trajectory: time in a and b is 50 each, exactly as far as
    the time quanta allow (each trajectory's total is rounded once, not each stay)."""
    text = chain(
        f"  - {{from: a, to: b, after: {{dist: fixed, value: {delay}}}}}\n"
        f"  - {{from: b, to: a, after: {{dist: fixed, value: {delay}}}}}\n",
        horizon=100,
        stages="  a: {}\n  b: {}\n",
    )
    result = run(text, n=200)
    a, b = result.stages["a"].time_in, result.stages["b"].time_in
    assert a + b == pytest.approx(100.0, abs=1e-4)
    assert a == pytest.approx(50.0, abs=1e-3)
