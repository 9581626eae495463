"""The benchmark peers simulate the same model as escalate: small runs agree with `solve`."""

from __future__ import annotations

import math

import pytest
from benchmarks import peers

import escalate
from escalate.compile import compile_scenario

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


def test_the_reference_chain_reproduces_the_design_figures():
    war = escalate.solve(REFERENCE).stages["war"]
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
