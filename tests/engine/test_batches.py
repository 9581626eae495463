"""The worlds engine: its rate map gives compile's numbers and the chain's entries exactly,
its figures agree with the per-world engine to 1e-9 (ordinary worlds and the corners of the
uncertain ranges), do not depend on the number of threads, and a world it cannot take goes to
the per-world engine."""

from __future__ import annotations

import numpy as np
import pytest

import escalate
from escalate.analysis.draws import draw_worlds, to_values, uncertain_parameters
from escalate.analysis.worlds import run_worlds
from escalate.engine import batch_kernels
from escalate.engine.batches import WorldsBatch, compiled_numbers
from escalate.engine.chain import Chain
from escalate.engine.compile import compile_scenario
from escalate.engine.evaluate import all_metrics, evaluate
from escalate.errors import EscalateError

from ..conftest import ROOT

MEMORYLESS = ["venezuela", "taiwan", "india-pakistan"]


def load(name):
    return escalate.load(ROOT / "scenarios" / f"{name}.yaml")


def corners(model, names, count: int, seed: int) -> np.ndarray:
    """Worlds at the corners of the uncertain ranges (each parameter at its 0.5% or 99.5%
    quantile): the stiffest rates the draws reach."""
    rng = np.random.default_rng(seed)
    unit = np.where(rng.random((count, len(names))) < 0.5, 0.005, 0.995)
    return to_values(model, names, unit).to_numpy(float)


@pytest.mark.parametrize("name", MEMORYLESS)
def test_the_rate_map_gives_compile_s_numbers_and_the_chain_s_entries_exactly(name):
    model = load(name)
    drawn = draw_worlds(model, 60, seed=3)
    names = list(drawn.columns)
    x = np.vstack([drawn.to_numpy(float), corners(model, names, 20, seed=4)])
    batch = WorldsBatch.build(model, names, all_metrics(model), sample=x)
    assert batch is not None
    spec = batch.spec
    template = Chain(compile_scenario(model, dict(zip(names, x[0], strict=True))))
    for row in x:
        compiled = compile_scenario(model, dict(zip(names, row, strict=True)))
        numbers = np.empty(len(spec.op))
        batch_kernels.rate_numbers(
            row, spec.op, spec.a_index, spec.a_value, spec.b_index, spec.b_value, numbers
        )
        assert np.array_equal(numbers, compiled_numbers(compiled))
        rates = np.empty(len(spec.entry_kind))
        batch_kernels.entry_rates(spec, numbers, rates)
        q = np.zeros(spec.q_size)
        np.add.at(q, spec.entry_slot, rates)
        out = np.bincount(spec.entry_row, weights=rates, minlength=spec.n_states)
        np.add.at(q, spec.diagonal_slot, -out)
        assert np.array_equal(q, template.with_rates(compiled).q.data)


@pytest.mark.parametrize("name", MEMORYLESS)
def test_batched_figures_agree_with_the_per_world_engine(name):
    """Every metric of ordinary worlds and of corner worlds, against ``solve_at_horizon`` one
    world at a time (its series in numba, term for term the Python one): 1e-9 relative (a
    figure that is nan there is nan here)."""
    model = load(name)
    metrics = all_metrics(model)
    drawn = draw_worlds(model, 8, seed=5)
    names = list(drawn.columns)
    x = np.vstack([drawn.to_numpy(float), corners(model, names, 4, seed=6)])
    batch = WorldsBatch.build(model, names, metrics, sample=x)
    values, status = batch.solve(x)
    assert (status == batch_kernels.SOLVED).all()
    for row, got in zip(x, values, strict=True):
        world = dict(zip(names, row, strict=True))
        solved = evaluate(model, world, metrics, numba_series=True).values
        expected = np.array([solved[m] for m in metrics])
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        both = ~np.isnan(expected)
        scale = np.maximum(np.abs(expected[both]), 1e-300)
        assert np.max(np.abs(got[both] - expected[both]) / scale) < 1e-9


def test_a_stage_entered_at_most_once_is_reached_by_the_flow_into_it():
    """Asked for ``p_reached`` alone, a stage on no cycle of stages gets no chain of its own
    (venezuela's war and occupation; the other shipped scenarios have none): the chain itself
    gives the probability that flowed in. It agrees with the absorbing
    chain's answer (asked with the mean time to reach) and the per-world engine to 1e-9, on
    ordinary and corner worlds."""
    model = load("venezuela")
    reached = [f"p_reached:{s}" for s in model.stages]  # terminal ones: the chain is walked
    timed = [f"time_to_reach:{s}:mean" for s in model.stages]
    drawn = draw_worlds(model, 8, seed=11)
    names = list(drawn.columns)
    x = np.vstack([drawn.to_numpy(float), corners(model, names, 4, seed=12)])
    by_flow = WorldsBatch.build(model, names, reached, sample=x)
    absorbing = WorldsBatch.build(model, names, reached + timed, sample=x)
    assert by_flow.spec.reach_by_flow.any() and not absorbing.spec.reach_by_flow.any()
    assert len(by_flow.spec.job_kind) < len(absorbing.spec.job_kind)
    alone = WorldsBatch.build(model, names, ["p_reached:full_scale_war"], sample=x)
    assert not alone.spec.reach_by_flow.any()  # no walk of the chain itself to ride on
    got, status = by_flow.solve(x)
    assert (status == batch_kernels.SOLVED).all()
    expected = absorbing.solve(x)[0][:, : len(reached)]
    for row, values, other in zip(x, got, expected, strict=True):
        solved = evaluate(model, dict(zip(names, row, strict=True)), reached, numba_series=True)
        one = np.array([solved.values[m] for m in reached])
        for reference in (other, one):
            scale = np.maximum(np.abs(reference), 1e-300)
            assert np.max(np.abs(values - reference) / scale) < 1e-9


def test_a_subset_of_metrics_solves_only_their_chains_and_gives_the_same_figures():
    model = load("venezuela")
    drawn = draw_worlds(model, 16, seed=7)
    names, x = list(drawn.columns), drawn.to_numpy(float)
    every = all_metrics(model)
    few = ["p_reached:invasion", "time_to_reach:full_scale_war:mean", "p_fired:us_low_profile"]
    whole = WorldsBatch.build(model, names, every, sample=x)
    part = WorldsBatch.build(model, names, few, sample=x)
    assert len(part.spec.job_kind) < len(whole.spec.job_kind)
    columns = [every.index(m) for m in few]
    assert np.array_equal(part.solve(x)[0], whole.solve(x)[0][:, columns])


def test_the_figures_do_not_depend_on_the_number_of_threads():
    model = load("taiwan")  # `at` jumps
    drawn = draw_worlds(model, 40, seed=8)
    batch = WorldsBatch.build(
        model, list(drawn.columns), all_metrics(model), sample=drawn.to_numpy(float)
    )
    one, _ = batch.solve(drawn.to_numpy(float), threads=1)
    two, _ = batch.solve(drawn.to_numpy(float), threads=2)
    assert np.array_equal(one, two, equal_nan=True)


def test_a_world_of_another_structure_goes_to_the_per_world_engine():
    """A trigger that cannot be on at the start (its initial chance 0) removes states: that
    world's chain has other entries, so the batch leaves it, and run_worlds solves it on its
    own (the same figure as solve)."""
    model = load("venezuela")
    names = uncertain_parameters(model)
    drawn = draw_worlds(model, 6, seed=9)
    drawn.loc[3, "mobilization_initial"] = 0.0
    batch = WorldsBatch.build(model, names, all_metrics(model), sample=drawn.to_numpy(float))
    _, status = batch.solve(drawn.to_numpy(float))
    assert status.tolist() == [0, 0, 0, batch_kernels.OTHER_STRUCTURE, 0, 0]
    weights = drawn.assign(weight=1.0)
    result = run_worlds(model, None, seed=1, engine="exact", given=weights)
    world = {k: float(v) for k, v in drawn.iloc[3].items()}
    expected = evaluate(model, world, ["p_reached:full_scale_war"]).values
    got = result.values.loc[3, "p_reached:full_scale_war"]
    assert abs(got - expected["p_reached:full_scale_war"]) < 1e-12


def test_a_world_too_fast_for_the_series_is_named():
    model = load("venezuela")
    drawn = draw_worlds(model, 3, seed=10)
    mean = next(n for n in drawn.columns if n.endswith("_mean"))
    drawn.loc[1, mean] = 1e-6  # a rate of a million a day
    with pytest.raises(EscalateError, match="world 1"):
        run_worlds(model, None, seed=1, engine="exact", given=drawn.assign(weight=1.0))


def test_a_scenario_the_engine_cannot_take_builds_no_batch():
    model = load("tutorial")  # not memoryless
    drawn = draw_worlds(model, 4, seed=11)
    assert (
        WorldsBatch.build(model, list(drawn.columns), ["p_reached:war"], sample=drawn.values)
        is None
    )


def test_the_forward_algorithm_of_every_world_at_once_is_each_world_s_own():
    """The worlds engine runs the record's program on every world's generator in one call:
    the same likelihood and filtered state as the world's own compiled chain (1e-12), on
    ordinary and corner worlds."""
    from escalate.forecast.forward import forward, program
    from escalate.forecast.observations import read_observations

    model = load("venezuela")
    obs = read_observations(ROOT / "scenarios/forecasting/venezuela-observed.yaml", model)
    drawn = draw_worlds(model, 12, seed=12)
    names = list(drawn.columns)
    x = np.vstack([drawn.to_numpy(float), corners(model, names, 4, seed=13)])
    batch = WorldsBatch.build(model, names, ["p_reached:full_scale_war"], sample=x)
    log_l, distributions, status = batch.filtered(x, program(batch.chain.c, batch.chain, obs))
    assert (status == batch_kernels.SOLVED).all()
    for row, got, distribution in zip(x, log_l, distributions, strict=True):
        own = forward(compile_scenario(model, dict(zip(names, row, strict=True))), obs)
        assert abs(got - own.log_likelihood) <= 1e-12 * abs(own.log_likelihood)
        assert np.max(np.abs(distribution - own.distribution)) < 1e-12


def test_a_session_that_ran_a_parallel_kernel_does_not_fork():
    """GNU OpenMP aborts a forked child once it has run in the parent: a nowcast asked for
    two worker processes after the worlds engine ran in the same session evaluates here
    instead of crashing its pool."""
    import subprocess
    import sys

    script = (
        "import escalate; m = escalate.load('scenarios/venezuela.yaml');"
        "escalate.run_worlds(m, 20, seed=1);"
        "r = escalate.nowcast(m, 'scenarios/forecasting/venezuela-observed.yaml', worlds=120,"
        " seed=1, workers=2); print(round(r.after[m.headline_stage()], 6))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 < float(done.stdout.strip()) < 1.0
