"""The exact solver against closed forms (to 1e-9), and the Monte Carlo engine against it.

Textbook absorbing chains (gambler's ruin, the drunkard's walk of Grinstead and Snell), the
closed forms of small scenarios, every shipped memoryless scenario, and random scenarios drawn
by hypothesis, each run through both engines with a fixed seed and compared within 4 standard
errors. Also: standard errors halve when n quadruples, and 95% Wilson intervals cover the exact
value about 95% of the time.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import escalate
from escalate.engine.compile import compile_scenario
from escalate.engine.numbers import wilson
from escalate.engine.simulate import run_trajectories

from ..conftest import ROOT, SCENARIOS

EXACT = 1e-9


def walk(n_states: int, up: float, down: float, start: int, horizon: float) -> str:
    """A birth-death chain on 0..n-1 with absorbing ends: rate `up` right, `down` left."""
    stages = "".join(
        f"  s{i}: {{terminal: true}}\n" if i in (0, n_states - 1) else f"  s{i}: {{}}\n"
        for i in range(n_states)
    )
    moves = "".join(
        f"  - {{from: s{i}, to: s{i + 1}, rate: {up}}}\n"
        f"  - {{from: s{i}, to: s{i - 1}, rate: {down}}}\n"
        for i in range(1, n_states - 1)
    )
    return (
        f"scenario: walk\nhorizon: {horizon}\nstart: s{start}\nstages:\n{stages}"
        f"transitions:\n{moves}"
    )


def test_gamblers_ruin():
    p, q, goal, start = 0.4, 0.6, 10, 3
    result = escalate.solve(escalate.loads(walk(goal + 1, p, q, start, horizon=3000)))
    ratio = q / p
    win = (1 - ratio**start) / (1 - ratio**goal)
    assert result.stages["s10"].p_reached == pytest.approx(win, abs=EXACT)
    assert result.stages["s0"].p_reached == pytest.approx(1 - win, abs=EXACT)
    # expected duration of the game (unit rate per step): time spent in transient states
    duration = start / (q - p) - goal / (q - p) * win
    spent = sum(result.stages[f"s{i}"].time_in for i in range(1, goal))
    assert spent == pytest.approx(duration, abs=1e-8)


def test_drunkards_walk():
    # Grinstead and Snell, Example 11.13: absorbing at 0 and 4, fundamental matrix N;
    # each step takes an exponential time of mean 1, so time in a state = visits to it
    fundamental = {1: (1.5, 1.0, 0.5), 2: (1.0, 2.0, 1.0), 3: (0.5, 1.0, 1.5)}
    absorbed_at_4 = {1: 0.25, 2: 0.5, 3: 0.75}
    for start in (1, 2, 3):
        result = escalate.solve(escalate.loads(walk(5, 0.5, 0.5, start, horizon=400)))
        assert result.stages["s4"].p_reached == pytest.approx(absorbed_at_4[start], abs=EXACT)
        for j, expected in zip((1, 2, 3), fundamental[start], strict=True):
            assert result.stages[f"s{j}"].time_in == pytest.approx(expected, abs=EXACT)


ONE = """\
scenario: one
horizon: 100
start: a
stages:
  a: {}
  b: {terminal: true}
transitions:
  - {from: a, to: b, rate: 0.01}
"""


def test_one_transition_closed_forms():
    r, h = 0.01, 100.0
    result = escalate.solve(escalate.loads(ONE))
    reach = 1 - math.exp(-r * h)
    b = result.stages["b"]
    assert b.p_reached == pytest.approx(reach, abs=EXACT)
    assert result.stages["a"].time_in == pytest.approx(reach / r, abs=EXACT)
    assert b.time_in == pytest.approx(h - reach / r, abs=EXACT)
    for q in (0.1, 0.5, 0.9):
        exact = -math.log(1 - q * reach) / r
        assert b.time_to_reach[f"p{round(q * 100)}"] == pytest.approx(exact, abs=EXACT)
    assert b.time_to_reach["mean"] == pytest.approx(1 / r - h * math.exp(-r * h) / reach, abs=1e-8)
    curve = result.curves[(result.curves.stage == "b") & (result.curves.curve == "reached")]
    assert np.allclose(curve.value, 1 - np.exp(-r * curve.t.to_numpy()), atol=EXACT, rtol=0)


def test_triggers_closed_forms():
    r, k, lam, t0, h = 0.01, 4.0, 0.02, 40.0, 100.0
    text = ONE.replace("rate: 0.01}", "rate: 0.01, when: {t: 4, u: 2}, requires: [v]}")
    text = text.replace(
        "transitions:",
        "triggers:\n  t: {onset: {a: {rate: 0.02}}}\n  u: {onset: {at: 40}}\n"
        "  v: {initial: 0.6}\ntransitions:",
    )
    result = escalate.solve(escalate.loads(text))

    def survival(rate_before, rate_after, until):
        # hazard before/after an exponential(lam) switch, over [0, until]
        d = rate_before + lam - rate_after
        return (
            math.exp(-(rate_before + lam) * until)
            + lam * math.exp(-rate_after * until) * (1 - math.exp(-d * until)) / d
        )

    # P(stay in a): v must be on (p = 0.6); hazard r, k r after t's onset, doubled after t0
    def stay(until):
        if until <= t0:
            return survival(r, k * r, until)
        # split at t0: joint law of (still in a, t on) at t0, then hazards doubled
        still_off = math.exp(-(r + lam) * t0)
        still_on = survival(r, k * r, t0) - still_off
        after_off = survival(2 * r, 2 * k * r, until - t0)
        after_on = math.exp(-2 * k * r * (until - t0))
        return still_off * after_off + still_on * after_on

    assert result.stages["b"].p_reached == pytest.approx(0.6 * (1 - stay(h)), abs=EXACT)
    assert result.triggers["v"]["p_fired"] == pytest.approx(0.6, abs=EXACT)
    assert result.triggers["u"]["p_fired"] == pytest.approx(0.4 + 0.6 * stay(t0), abs=EXACT)


def test_solve_json_has_the_summary_keys_without_paths(cli):
    result = cli("solve", ROOT / "scenarios" / "venezuela.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "exact" and "paths" not in summary
    assert summary["trajectories"] is None and summary["seed"] is None
    war = summary["stages"]["full_scale_war"]
    assert war["p_reached_se"] == 0.0 and war["p_reached_ci"] == [war["p_reached"]] * 2


def test_solve_refuses_a_non_exponential_timing_by_its_line(cli):
    path = ROOT / "scenarios" / "tutorial.yaml"
    result = cli("solve", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if "dist: gamma" in text)
    assert result.exit_code == 2
    assert f"tutorial.yaml:{line}:" in result.stderr
    assert "transitions[3].after.dist: a gamma delay is not memoryless" in result.stderr


def test_solve_refuses_a_joint_space_too_large(cli, scenario_file):
    triggers = "".join(f"  t{k}: {{initial: 0.5}}\n" for k in range(20))
    when = ", ".join(f"t{k}: 2" for k in range(20))
    text = ONE.replace("transitions:", f"triggers:\n{triggers}transitions:").replace(
        "rate: 0.01}", f"rate: 0.01, when: {{{when}}}}}"
    )
    result = cli("solve", scenario_file(text))
    assert result.exit_code == 2
    assert "solve cannot handle it" in result.stderr


def assert_agree(exact, mc, n):
    """Every probability within 4 standard errors (computed from the exact value)."""
    worst = 0.0
    for name, e in exact.stages.items():
        m = mc.stages[name]
        for what in ("p_reached", "p_at_horizon"):
            p, p_hat = getattr(e, what), getattr(m, what)
            se = math.sqrt(p * (1 - p) / n)
            assert abs(p_hat - p) <= 4 * se + 1 / n, (name, what, p_hat, p, se)
            worst = max(worst, abs(p_hat - p) / se if se else 0.0)
    for name, e in exact.triggers.items():
        for what in ("p_fired", "p_on_at_horizon"):
            p, p_hat = e[what], mc.triggers[name][what]
            se = math.sqrt(p * (1 - p) / n)
            assert abs(p_hat - p) <= 4 * se + 1 / n, (name, what, p_hat, p, se)
            worst = max(worst, abs(p_hat - p) / se if se else 0.0)
        on, on_hat = e["time_on"], mc.triggers[name]["time_on"]
        se = mc.triggers[name]["time_on_se"]
        assert abs(on_hat - on) <= 4 * se + 1e-6 * exact.horizon, (name, "time_on", on_hat, on)
    return worst


MEMORYLESS = [path for path in SCENARIOS if compile_scenario(escalate.load(path)).is_markov]


@pytest.mark.parametrize("path", MEMORYLESS, ids=lambda p: p.name)
def test_monte_carlo_agrees_with_exact_on_shipped_scenarios(path):
    scenario = escalate.load(path)
    n = 400_000
    assert_agree(escalate.solve(scenario), escalate.simulate(scenario, n, seed=2024), n)


@st.composite
def random_scenarios(draw):
    n_stages = draw(st.integers(2, 5))
    terminal = draw(st.lists(st.booleans(), min_size=n_stages, max_size=n_stages))
    terminal[0] = False
    stages = "".join(f"  s{i}: {{terminal: {str(t).lower()}}}\n" for i, t in enumerate(terminal))
    n_triggers = draw(st.integers(0, 2))
    triggers = ""
    for k in range(n_triggers):
        initial = draw(st.sampled_from([0, 0.3, 1]))
        onsets = ["", "onset: {rate: 0.02}", "onset: {s0: {mean: 30}}", "onset: {at: 25}"]
        if k > 0:  # a ratio from an earlier trigger on the onset (an onset `when`)
            onsets.append("onset: {rate: 0.01, when: {t0: 4}}")
        onset = draw(st.sampled_from(onsets))
        offset = draw(st.sampled_from(["", "offset: {rate: 0.03}", "offset: {s0: {mean: 20}}"]))
        keys = ", ".join(x for x in (f"initial: {initial}", onset, offset) if x)
        triggers += f"  t{k}: {{{keys}}}\n"
    pairs = [(i, j) for i in range(n_stages) for j in range(n_stages) if i != j and not terminal[i]]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=8, unique=True))
    transitions = ""
    for i, j in chosen:
        rate = draw(st.sampled_from([0.005, 0.02, 0.05, 0.2]))
        extra = ""
        if n_triggers:
            k = draw(st.integers(0, n_triggers - 1))
            how = draw(st.sampled_from(["", "when", "requires"]))
            if how == "when":
                extra = f", when: {{t{k}: {draw(st.sampled_from([0, 0.5, 3]))}}}"
            elif how == "requires":
                extra = f", requires: [t{k}]"
            effect = draw(st.sampled_from(["", "on", "off", "0.4"]))
            if effect:
                extra += f", effects: {{t{draw(st.integers(0, n_triggers - 1))}: {effect}}}"
        transitions += f"  - {{from: s{i}, to: s{j}, rate: {rate}{extra}}}\n"
    text = f"scenario: random\nhorizon: 60\nstart: s0\nstages:\n{stages}"
    if triggers:
        text += f"triggers:\n{triggers}"
    return text + f"transitions:\n{transitions}"


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(random_scenarios())
def test_monte_carlo_agrees_with_exact_on_random_scenarios(text):
    scenario = escalate.loads(text)
    n = 20_000
    assert_agree(escalate.solve(scenario), escalate.simulate(scenario, n, seed=99), n)


def test_standard_error_halves_when_n_quadruples():
    scenario = escalate.loads(ONE)
    small = escalate.simulate(scenario, 50_000, seed=1).stages["b"].p_reached_se
    large = escalate.simulate(scenario, 200_000, seed=1).stages["b"].p_reached_se
    assert 1.9 < small / large < 2.1


def test_wilson_intervals_cover_the_exact_value_about_95_percent():
    compiled = compile_scenario(escalate.loads(ONE))
    exact = 1 - math.exp(-1.0)
    runs, n = 200, 400
    covered = 0
    for seed in range(runs):
        tally = run_trajectories(compiled, n, seed=10_000 + seed)
        lo, hi = wilson(int(tally.reached[1]), n)
        covered += lo <= exact <= hi
    # coverage consistent with 95% (two-sided binomial test at the 0.1% level)
    assert stats.binomtest(covered, runs, 0.95).pvalue > 0.001, covered


@pytest.mark.parametrize("h", [1e-9, 1e-4, 0.37, 1.0, 7.5, 250.0])
def test_uniformized_step_matches_the_matrix_exponential(h):
    """Every step length ends (rounding once stalled the Poisson tail) and matches expm."""
    from scipy import linalg, sparse

    from escalate.engine.stepping import Uniformized

    rng = np.random.default_rng(7)
    rates = rng.uniform(0.0, 2.0, (5, 5)) * (rng.uniform(size=(5, 5)) < 0.6)
    np.fill_diagonal(rates, 0.0)
    q = rates - np.diag(rates.sum(axis=1))
    v = rng.dirichlet(np.ones(5))
    end, integral = Uniformized(sparse.csr_matrix(q)).step(v, h)
    block = np.zeros((10, 10))
    block[:5, :5], block[:5, 5:] = q * h, np.eye(5) * h
    e = linalg.expm(block)
    np.testing.assert_allclose(end, v @ e[:5, :5], atol=1e-12)
    np.testing.assert_allclose(integral, v @ e[:5, 5:], atol=1e-10 * max(h, 1.0))


def van_loan(q, v, h):
    """``v expm(Q h)`` and its integral over [0, h], from one block exponential."""
    from scipy import linalg

    n = q.shape[0]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n], block[:n, n:] = q * h, np.eye(n) * h
    e = linalg.expm(block)
    return v @ e[:n, :n], v @ e[:n, n:]


def assert_horizon_figures_match_the_grid_solver(scenario):
    """The horizon-only solver (uniformization; worlds, sweeps, sensitivity) gives the grid
    solver's probabilities to 1e-9, and times in stage and mean times to reach that match an
    independent Van Loan integral (no ``at`` jumps) or the trapezoid rule on the grid."""
    from escalate.engine.chain import Chain
    from escalate.engine.exact import _absorbing, solve_at_horizon, solve_chain

    compiled = compile_scenario(scenario)
    fast, full = solve_at_horizon(compiled), solve_chain(compiled)
    horizon = compiled.horizon
    np.testing.assert_allclose(fast.p_reached, full.reached[:, -1], atol=1e-9)
    np.testing.assert_allclose(fast.p_at_horizon, full.occupancy[:, -1], atol=1e-9)
    np.testing.assert_allclose(fast.p_fired, full.p_fired, atol=1e-9)
    chain = Chain(compiled)
    if not chain.jumps:
        end, area = van_loan(chain.q.toarray(), chain.p0, horizon)
        time_in = np.bincount(chain.stage_of, weights=area, minlength=compiled.n_stages)
        np.testing.assert_allclose(fast.time_in, time_in, atol=1e-7 * horizon)
        for s in range(compiled.n_stages):
            target = chain.stage_of == s
            q = _absorbing(chain, target).toarray()
            end, area = van_loan(q, chain.p0, horizon)
            if end[target].sum() > 1e-9:
                mean = horizon - area[target].sum() / end[target].sum()
                assert fast.mean_time_to_reach[s] == pytest.approx(mean, abs=1e-6 * horizon)
    else:  # the trapezoid rule on a one-unit grid: error far below 1e-3 of the horizon here
        trapezoid = np.trapezoid(full.occupancy, compiled.grid, axis=1)
        np.testing.assert_allclose(fast.time_in, trapezoid, atol=1e-3 * horizon)
    partial = solve_at_horizon(compiled, occupancy=False, reach=[compiled.n_stages - 1])
    assert partial.p_reached[-1] == pytest.approx(fast.p_reached[-1], abs=1e-12)
    assert np.isnan(partial.p_at_horizon).all() and np.isnan(partial.p_reached[:-1]).all()


@pytest.mark.parametrize("path", MEMORYLESS, ids=lambda p: p.name)
def test_horizon_solver_matches_the_grid_solver_on_shipped_scenarios(path):
    assert_horizon_figures_match_the_grid_solver(escalate.load(path))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(random_scenarios())
def test_horizon_solver_matches_the_grid_solver_on_random_scenarios(text):
    assert_horizon_figures_match_the_grid_solver(escalate.loads(text))


@pytest.mark.parametrize("path", ["scenarios/venezuela.yaml", "benchmarks/language.yaml"])
def test_the_compiled_series_gives_the_same_figures_to_the_bit(path):
    """Exact worlds run the uniformization series in numba; it is the Python series, term for
    term, so every horizon figure is identical."""
    from escalate.engine.compile import compile_scenario
    from escalate.engine.exact import solve_at_horizon

    compiled = compile_scenario(escalate.load(ROOT / path))
    python, numba = solve_at_horizon(compiled), solve_at_horizon(compiled, numba_series=True)
    for name in python.__dataclass_fields__:
        assert np.array_equal(getattr(python, name), getattr(numba, name), equal_nan=True), name


@pytest.mark.parametrize("hub", [False, True], ids=["even rows (padded)", "one long row (CSR)"])
def test_the_compiled_series_is_expm_and_its_integral(hub):
    """One piece of the compiled series against dense ``expm`` on a random generator: the
    distribution, and its integral over the step (the top-right block of the expm of
    ``[[Q, I], [0, 0]]``). Rows of even length run padded; a state every other one flows
    into makes one row of its transpose too long to pad, and the CSR loop runs instead. Both
    paths give the Python series' figures to the bit."""
    from scipy import linalg, sparse

    from escalate.engine.stepping import Uniformized
    from escalate.engine.uniformize import uniformized_piece

    rng = np.random.default_rng(3)
    n, h = 40, 7.0
    q = np.zeros((n, n))
    for i in range(n):
        q[i, rng.choice(np.delete(np.arange(n), i), size=3, replace=False)] = rng.uniform(
            0.05, 0.4, size=3
        )
    if hub:
        q[1:, 0] = 0.02
    np.fill_diagonal(q, -q.sum(axis=1))
    q_t = sparse.csr_matrix(q.T)
    lengths = np.diff(q_t.indptr)
    assert (lengths.max() > 2 * lengths.sum() // n + 1) == hub  # the path meant is the one run
    v = rng.dirichlet(np.ones(n))
    lam = float(-q.diagonal().min())
    out, integral = uniformized_piece(
        q_t.indptr, q_t.indices, q_t.data, v, lam, lam * h, 400
    )  # fmt: skip
    python = Uniformized(q_t.T.tocsr())._piece(v, h)  # the Python series, term for term
    assert np.array_equal(out, python[0]) and np.array_equal(integral, python[1])
    assert np.allclose(out, v @ linalg.expm(q * h), rtol=0, atol=1e-13)
    augmented = np.block([[q, np.eye(n)], [np.zeros((n, n)), np.zeros((n, n))]])
    assert np.allclose(integral, v @ linalg.expm(augmented * h)[:n, n:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["taiwan", "india-pakistan", "venezuela"])
def test_reach_curves_taken_from_the_walk_of_the_chain_itself(name):
    """A stage every trajectory starts in is reached at 0, and a terminal stage's reach curve
    is its occupancy (its states have no way out): both read without an absorbing walk of
    their own, and they agree with that walk to 1e-12 (Taiwan has `at` jumps)."""
    from escalate.engine import exact
    from escalate.engine.chain import Chain
    from escalate.engine.stepping import Stepper

    compiled = compile_scenario(escalate.load(ROOT / "scenarios" / f"{name}.yaml"))
    solution = exact.solve_chain(compiled)
    chain, grid = Chain(compiled), compiled.grid
    shortcuts = 0
    for s in range(compiled.n_stages):
        target = chain.stage_of == s
        shortcuts += compiled.terminal[s] or chain.p0[target].sum() == 1.0
        absorbing = Stepper(exact._absorbing(chain, target))
        v, curve = chain.p0.copy(), [chain.p0[target].sum()]
        for g in range(1, len(grid)):
            v, _ = exact.advance(chain, absorbing, v, grid[g - 1], grid[g])
            curve.append(v[target].sum())
        np.testing.assert_allclose(solution.reached[s], curve, rtol=0, atol=1e-12)
    assert shortcuts >= 2  # a certain start stage and at least one terminal stage


def test_a_chain_reused_for_other_numbers_has_the_rates_built_afresh():
    """Worlds share their chain's states and take their rates from with_rates: against the
    chain built from scratch for each parameter set, the same generator, entry by entry, with
    effects that are sure (on, off) and chances on two triggers of one transition."""
    from escalate.engine.chain import Chain, chain_of

    model = escalate.loads("""\
scenario: fx
horizon: 100
start: a
parameters:
  p: {value: 0.3, uncertain: {dist: uniform, low: 0.05, high: 0.95}}
  q: {value: 0.6, uncertain: {dist: uniform, low: 0.05, high: 0.95}}
  r: {value: 0.02, uncertain: {dist: gamma, mean: 0.02, sd: 0.01}}
stages: {a: {}, b: {}, c: {terminal: true}}
triggers:
  x: {onset: {rate: 0.01}, offset: {rate: 0.05}}
  y: {initial: 0.2}
transitions:
  - {from: a, to: b, rate: r, effects: {x: p, y: q}}
  - {from: b, to: a, rate: 0.03, effects: {x: off}}
  - {from: b, to: c, rate: r, when: {x: 2, y: 0.5}, effects: {y: on}}
""")
    for world in escalate.draw_worlds(model, 6, 3).to_dict("records"):
        c = compile_scenario(model, world)
        reused, fresh = chain_of(c), Chain(c)
        order = [reused.index[state] for state in fresh.states]
        np.testing.assert_allclose(
            reused.q.toarray()[np.ix_(order, order)], fresh.q.toarray(), rtol=1e-14, atol=0
        )
