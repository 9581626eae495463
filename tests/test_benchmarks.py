"""The benchmark peers simulate the same model as escalate: small runs agree with `solve`."""

from __future__ import annotations

import math

import pytest
from benchmarks import peers

import escalate
from escalate.engine.compile import compile_scenario

from .conftest import ROOT

REFERENCE = ROOT / "benchmarks" / "reference.yaml"


@pytest.fixture(scope="module")
def reference():
    model = escalate.load(REFERENCE)
    compiled = compile_scenario(model)
    exact = escalate.solve(model).stages["war"].p_reached
    return compiled, exact


def assert_within(hits: int, n: int, exact: float) -> None:
    se = math.sqrt(exact * (1 - exact) / n)
    assert abs(hits / n - exact) <= 4 * se, (hits / n, exact, se)


@pytest.mark.parametrize("chain", ["reference.yaml", "cycles.yaml"])
def test_the_benchmark_chains_reproduce_the_design_figures(chain):
    war = escalate.solve(ROOT / "benchmarks" / chain).stages["war"]
    assert war.p_reached == pytest.approx(0.431236, abs=1e-6)
    assert war.time_to_reach["p50"] == pytest.approx(163.61, abs=1e-2)


@pytest.mark.parametrize("xoshiro", [True, False])
def test_bare_numba_loops(reference, xoshiro):
    compiled, exact = reference
    n = 100_000
    assert_within(peers.bare_numba_loop(compiled, "war", n, 3, xoshiro=xoshiro), n, exact)


def test_pure_python_event_loop(reference):
    compiled, exact = reference
    assert_within(peers.pure_python_event_loop(compiled, "war", 5_000, 3), 5_000, exact)


@pytest.mark.parametrize("unabsorbed", [True, False])
def test_numpy_day_stepped(reference, unabsorbed):
    compiled, exact = reference
    daily = peers.DailyChain(compiled, "war")
    hits = peers.numpy_day_stepped(daily, 5_000, 3, only_unabsorbed=unabsorbed)
    assert_within(hits, 5_000, exact)


def test_quantecon(reference):
    pytest.importorskip("quantecon")
    compiled, exact = reference
    daily = peers.DailyChain(compiled, "war")
    assert_within(peers.quantecon_simulate(daily, 2_000, 3), 2_000, exact)


def test_tables_render_targets_for_both_chains():
    from benchmarks.measure import REFERENCE_RATES, ROWS
    from benchmarks.tables import calibration_table, targets

    rows = [{"name": name, "rate": 1e6} for name in ROWS if name != "escalate solve (exact)"]
    by = {r["name"]: r for r in rows}
    by["escalate, 2 threads"]["rate"] = 25e6
    by["escalate, 1 thread"]["rate"] = 13e6
    table = targets(rows, {"cached (second process)": 1.5}, {10**6: 1000, 10**8: 1050})
    assert "| at least 20 million trajectories/s on 2 threads | 25.00 M/s | yes |" in table
    assert "| 2 threads at least 1.8x one | 1.92x | yes |" in table
    assert "1.50 s | yes" in table and "(+5.0%) | yes" in table
    lines = targets(rows, None, None).splitlines()
    assert not any("second process" in line or "memory" in line for line in lines)
    calibration = calibration_table({"reference": rows, "cycles": rows})
    assert len(calibration.splitlines()) == 2 + len(REFERENCE_RATES)


def test_the_language_chain_simulates_what_solve_gives():
    """benchmarks/language.yaml (every key of the richer language) is a fair speed comparison
    only if the engine does the chain's work right: Monte Carlo within 4 SE of the exact figures."""
    model = escalate.load(ROOT / "benchmarks" / "language.yaml")
    exact, mc = escalate.solve(model), escalate.simulate(model, 200_000, seed=2)
    for name, stage in exact.stages.items():
        got = mc.stages[name]
        assert abs(got.p_reached - stage.p_reached) <= 4 * got.p_reached_se + 1e-12, name
    for name, trigger in exact.triggers.items():
        got = mc.triggers[name]
        for key in ("p_fired", "p_on_at_horizon", "time_on"):
            assert abs(got[key] - trigger[key]) <= 4 * got[f"{key}_se"] + 1e-12, (name, key)


@pytest.mark.parametrize("index", [1, 5], ids=["cycles", "every-extra"])
@pytest.mark.parametrize("xoshiro", [False, True], ids=["np.random", "xoshiro"])
def test_the_loops_written_for_a_generated_chain_simulate_it(index, xoshiro):
    """A speed comparison is fair only if the hand-written loop does the chain's work: its
    P(war) within 4 SE of the exact solution of the same generated scenario."""
    from benchmarks.chains import SHAPES, generate, hand_written

    from escalate.engine.simulate import chunk_state

    chain = generate(SHAPES[index])
    exact = escalate.solve(escalate.loads(chain.yaml)).stages["war"].p_reached
    loop, _ = hand_written(chain, xoshiro)
    n = 1_000_000  # a rate 2x off in one state moved P(war) by 4 SE at this size
    assert_within(loop(n, 3, chunk_state(3, 0)), n, exact)
