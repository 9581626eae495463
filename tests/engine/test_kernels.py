"""The kernel's samplers against scipy's distributions (Kolmogorov-Smirnov), and its stream."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from escalate.engine import kernels as _kernels
from escalate.engine.compile import EXPONENTIAL, FIXED, GAMMA, LOGNORMAL, UNIFORM, WEIBULL
from escalate.engine.simulate import chunk_state

TUTORIAL = Path(__file__).parents[2] / "scenarios" / "tutorial.yaml"

CASES = [
    (EXPONENTIAL, 0.5, 0.0, stats.expon(scale=2.0)),
    (UNIFORM, 3.0, 7.0, stats.uniform(3.0, 4.0)),
    (GAMMA, 2.5, 4.0, stats.gamma(2.5, scale=4.0)),
    (GAMMA, 0.3, 10.0, stats.gamma(0.3, scale=10.0)),
    (WEIBULL, 1.7, 20.0, stats.weibull_min(1.7, scale=20.0)),
    (LOGNORMAL, math.log(30.0), 0.6, stats.lognorm(0.6, scale=30.0)),
]


@pytest.mark.parametrize(("kind", "p1", "p2", "dist"), CASES, ids=lambda c: str(c)[:12])
def test_latent_durations_follow_their_distribution(kind, p1, p2, dist):
    out = np.empty(200_000)
    _kernels.draw_latent(chunk_state(17, 0), kind, p1, p2, out)
    assert stats.kstest(out, dist.cdf).pvalue > 0.001


def test_fixed_delay_is_exact():
    out = np.empty(10)
    _kernels.draw_latent(chunk_state(1, 0), FIXED, 14.0, 0.0, out)
    assert np.all(out == 14.0)


def test_chunk_streams_differ_and_repeat():
    a, b = np.empty(1000), np.empty(1000)
    _kernels.draw_latent(chunk_state(5, 0), UNIFORM, 0.0, 1.0, a)
    _kernels.draw_latent(chunk_state(5, 0), UNIFORM, 0.0, 1.0, b)
    assert np.array_equal(a, b)
    _kernels.draw_latent(chunk_state(5, 1), UNIFORM, 0.0, 1.0, b)
    assert not np.array_equal(a, b)
    # neighbouring chunks are not correlated
    assert abs(stats.pearsonr(a, b).statistic) < 4 / math.sqrt(1000)


def test_path_table_keeps_counting_when_paths_outnumber_its_slots():
    """Far more distinct paths than slots: the table fills to 3/4 of its slots, every other
    trajectory counts in ``other``, and a path kept early is still counted every time."""
    import escalate
    from escalate.engine.compile import PATH_CAPACITY, compile_scenario
    from escalate.engine.simulate import _Batch, launch

    text = """
scenario: many-paths
horizon: 1000
start: a
stages: {a: {}, b: {}, c: {}, out: {terminal: true}, home: {terminal: true}}
transitions:
  - {from: a, to: b, rate: 1}
  - {from: a, to: home, rate: 0.25}
  - {from: b, to: a, rate: 1}
  - {from: b, to: c, rate: 1}
  - {from: c, to: b, rate: 1}
  - {from: c, to: out, rate: 0.05}
"""
    compiled = compile_scenario(escalate.loads(text))
    n = 40_000
    batch = _Batch(compiled, 1)
    launch(compiled, np.array([n]), chunk_state(3, 0)[None, :].copy(), batch)
    rows = batch.rows
    counts = rows.path_counts[0]
    assert (counts > 0).sum() == PATH_CAPACITY * 3 // 4
    assert rows.path_other[0, 0] > 0
    assert counts.sum() + rows.path_other[0, 0] == n
    # a -> home at once: probability 0.25 / 1.25, whatever the table's load
    direct = counts[(rows.path_lengths[0] == 2) & (rows.path_stages[0, :, 1] == 4)].sum()
    p = 0.2
    assert abs(direct / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_ziggurat_exponential_follows_exp1_into_its_tail():
    """The hazard race's Exp(1) sampler (ziggurat): distribution, mean and the tail beyond the
    base layer (r = 7.697), where it switches to r + Exp(1)."""
    n = 4_000_000
    out = np.empty(n)
    _kernels.draw_exponentials(chunk_state(11, 0), out)
    assert stats.kstest(out[:500_000], "expon").pvalue > 0.001
    assert abs(out.mean() - 1.0) <= 4 / math.sqrt(n)
    for x in (1.0, 5.0, 7.697, 9.0):
        p = math.exp(-x)
        assert abs((out > x).mean() - p) <= 4 * math.sqrt(p * (1 - p) / n), x
    assert out.min() >= 0.0


def test_a_reused_batch_buffer_gives_what_a_fresh_one_gives():
    """In-process runs hand the same per-chunk rows to every batch; the kernel zeroes them."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import (
        ACCUMULATORS,
        BATCH_CHUNKS,
        CHUNK_SIZE,
        SUM,
        _Batch,
        _batch_task,
    )

    from ..conftest import ROOT

    compiled = compile_scenario(escalate.load(ROOT / "scenarios" / "venezuela.yaml"))
    n = BATCH_CHUNKS * CHUNK_SIZE + 3 * CHUNK_SIZE // 2  # a full batch, then 1.5 chunks
    buffer = _Batch(compiled, BATCH_CHUNKS)
    _batch_task(compiled, n, 5, 0, buffer=buffer)  # leaves the first batch's counts behind
    reused, _ = _batch_task(compiled, n, 5, BATCH_CHUNKS, buffer=buffer)
    fresh, _ = _batch_task(compiled, n, 5, BATCH_CHUNKS)
    assert reused.n == fresh.n == n - BATCH_CHUNKS * CHUNK_SIZE
    summed = [a.name for a in ACCUMULATORS if a.merge in (SUM, "ordered")]
    assert len(summed) == 12  # with on_at_horizon, time_on, time_on_sq
    for name in summed:
        np.testing.assert_array_equal(getattr(reused, name), getattr(fresh, name), name)
    assert len(fresh.paths) > 0
    assert reused.paths == fresh.paths and reused.path_other == fresh.path_other


def test_every_chunk_row_sits_on_cache_lines_of_its_own():
    """Threads run neighbouring chunks at once: a line shared by two chunks' short rows (one
    value per stage or trigger) would bounce between cores at every stage entry (false
    sharing). Every such row, and every generator state, starts on a 64-byte line and spans
    whole lines (the long per-chunk blocks of histograms share at most their edges); the
    tally reads the unpadded part, in the shapes of the accumulator table."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import ACCUMULATORS, CACHE_LINE, PATHS, _Batch, chunk_states

    from ..conftest import ROOT

    compiled = compile_scenario(escalate.load(ROOT / "scenarios" / "venezuela.yaml"))
    assert compiled.n_stages * 8 % CACHE_LINE != 0  # its stage rows need padding
    batch = _Batch(compiled, 5)
    dims = (compiled.n_stages, compiled.n_triggers, len(compiled.grid))
    for a in ACCUMULATORS:
        rows = getattr(batch.rows, a.name)
        assert rows.flags.c_contiguous, a.name
        assert rows.ctypes.data % CACHE_LINE == 0, a.name
        if a.merge == PATHS:  # the kernel reads the table's size from its length
            assert rows.shape[1:] == a.shape(*dims), a.name
        elif len(a.shape(*dims)) == 1:
            starts = [rows[b].ctypes.data % CACHE_LINE for b in range(rows.shape[0])]
            assert starts == [0] * 5, a.name
            assert rows.strides[0] % CACHE_LINE == 0, a.name
            assert rows.shape[1] >= a.shape(*dims)[0], a.name
    states = chunk_states(7, 2, 3)  # what _batch_task hands the kernel
    assert states.shape == (3, CACHE_LINE // 8)
    assert [states[b].ctypes.data % CACHE_LINE for b in range(3)] == [0, 0, 0]
    assert states[:, 4:].sum() == 0 and len({tuple(row) for row in states[:, :4]}) == 3
    summed = batch.to_tally(5, 0)
    for a in ACCUMULATORS:
        if a.name in summed.arrays:
            assert summed.arrays[a.name].shape == a.shape(*dims), a.name


def test_the_kernel_reads_the_accumulators_and_the_model_by_their_names():
    """One table drives the accumulators: the kernel reads each of them (``acc.NAME``) and
    nothing else of ``acc``, and reads of ``model`` name fields of ``KernelModel``; a name the
    table lacks would not compile, one the kernel ignores would never be counted."""
    import inspect
    import re

    from escalate.engine.simulate import Accumulators, KernelModel

    source = inspect.getsource(_kernels)
    assert set(re.findall(r"\bacc\.(\w+)", source)) == set(Accumulators._fields)
    assert set(re.findall(r"\bmodel\.(\w+)", source)) == set(KernelModel._fields)
    assert list(inspect.signature(_kernels.run_batch.py_func).parameters) == [
        "sizes", "states", "model", "acc", "switches_off", "guided",
    ]  # fmt: skip


def test_every_accumulator_row_is_zeroed_by_the_kernel():
    """Rows full of garbage from an earlier batch: a chunk of 0 trajectories leaves every one
    of them at zero (the start-stage counts of a chunk of 0 are 0 too)."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import _Batch, launch

    from ..conftest import ROOT

    compiled = compile_scenario(escalate.load(ROOT / "scenarios" / "venezuela.yaml"))
    batch = _Batch(compiled, 2)
    for rows in batch.rows:
        rows[...] = 7
    launch(compiled, np.array([0, 0]), np.stack([chunk_state(1, 0), chunk_state(1, 1)]), batch)
    for name, rows in zip(batch.rows._fields, batch.rows, strict=True):
        assert not rows.any(), name


def test_the_kernels_timing_codes_are_the_compilers():
    """Each kernel module keeps its own copy of the timing codes (numba's cache would not see
    a change in compile.py); they must be the codes compile.py writes."""
    from escalate.engine import compile as compiler
    from escalate.engine import delays, particles

    for name in compiler.KIND_NAMES:
        for kernel in (_kernels, delays, particles):
            assert getattr(kernel, name.upper()) == getattr(compiler, name.upper()), name
    assert delays._DUE == particles._DUE  # the one tolerance of a fixed delay falling due


def test_path_tables_merge_by_key_and_trim_the_rarest():
    """Paths of two batches add their counts per key; trimming keeps the most frequent (ties:
    the smaller key) and hands back the trajectories it dropped; a result names the 20 most
    frequent paths exactly as a full sort by (count, names) would."""
    from escalate.engine.compile import PATH_LENGTH
    from escalate.engine.simulate import Paths

    def table(keys, counts):
        n = len(keys)
        stages = np.zeros((n, PATH_LENGTH), np.int16)
        stages[:, 0] = np.asarray(keys) % 7
        return Paths(
            np.asarray(keys, np.uint64), np.asarray(counts, np.int64), np.ones(n, np.int64), stages
        )

    merged = table([5, 3, 9], [1, 2, 3]).merged(table([9, 4], [10, 1]))
    assert merged.keys.tolist() == [3, 4, 5, 9] and merged.counts.tolist() == [2, 1, 1, 13]
    assert merged.stages[:, 0].tolist() == [3, 4, 5, 2]
    dropped = merged.trim(kept=2, above=3)
    assert dropped == 2  # keys 4 and 5 (count 1 each): 3 (count 2) and 9 (13) stay
    assert merged.keys.tolist() == [3, 9] and merged.counts.tolist() == [2, 13]
    assert merged.trim(kept=1, above=3) == 0  # not above the bound: nothing dropped

    from types import SimpleNamespace

    from escalate.engine.results import TOP_PATHS, _paths

    rng = np.random.default_rng(3)
    keys = np.arange(500)
    counts = rng.integers(1, 6, size=500)  # many ties at the 20th place
    paths = table(keys, counts)
    paths.lengths[:] = 1
    names = [f"s{i}" for i in range(7)]
    tally = SimpleNamespace(paths=paths, n=int(counts.sum()))
    got = _paths(tally, SimpleNamespace(stage_names=names))
    full = sorted(
        ((int(c), [names[k % 7]]) for k, c in zip(keys, counts, strict=True)),
        key=lambda e: (-e[0], e[1]),
    )
    assert [(round(p["p"] * tally.n), p["path"]) for p in got] == full[:TOP_PATHS]


@pytest.mark.parametrize("scenario", ["benchmarks/reference.yaml", "benchmarks/cycles.yaml"])
def test_the_kernel_without_switching_off_counts_as_the_general_one(scenario):
    """A scenario whose triggers never switch off runs a kernel compiled without the
    bookkeeping of triggers going off (``switches_off=None``): its counts equal the general
    kernel's on the same chunks, to the bit (squares of time on to rounding: they add in
    another order)."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import _Batch, chunk_state, kernel_model, switches_off

    compiled = compile_scenario(escalate.load(Path(__file__).parents[2] / scenario))
    assert switches_off(compiled) is None
    assert switches_off(compile_scenario(escalate.load(TUTORIAL))) is True  # it has an offset
    sizes = np.array([20_000, 7_000], np.int64)
    rows = {}
    for mode in (None, True):
        batch = _Batch(compiled, 2)
        states = np.stack([chunk_state(3, b) for b in range(2)])
        _kernels.run_batch(sizes, states, kernel_model(compiled), batch.rows, mode, None)
        rows[mode] = batch.rows
    for name in rows[None]._fields:
        fast, general = getattr(rows[None], name), getattr(rows[True], name)
        if name == "time_on_sq":
            np.testing.assert_allclose(fast, general, rtol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(fast, general, err_msg=name)
    assert rows[None].time_on.sum() > 0 and rows[None].on_at_horizon.sum() > 0


def _scan_choice(cumulative_row, n_events, u):
    """The event a race chooses by the kernel's full scan: how many cumulative hazards the
    pick ``u * total`` reaches, short of the last."""
    pick = u * cumulative_row[n_events - 1]
    return int(np.sum(pick >= cumulative_row[: n_events - 1]))


def test_a_guide_table_starts_at_or_before_the_event_the_scan_chooses():
    """Every bin of a guide table, at its lowest uniform (``b / GUIDE_BINS`` exactly), at its
    highest, and at random ones: the guide's start is the scan's choice at the lowest, at or
    before it at every other, and its packed event is the event at that start. Rows with
    hazards of very different sizes (many events in one bin), one event far wider than a
    bin, a single event, a last hazard too small to move the total, and subnormals."""
    rng = np.random.default_rng(5)
    rows = [rng.uniform(0.001, 0.05, size=n) for n in (2, 3, 9, 11, 40)]
    rows += [np.array([1e-9, 1.0, 1e-9, 1e-9, 3.0]), np.array([0.1] * 12), np.array([5.0, 1e-12])]
    rows += [np.array([0.3]), np.array([1.0, 1e-17]), np.array([5e-324, 1e-310, 2e-308, 1e-300])]
    width = max(len(r) for r in rows)
    count = np.array([[len(r) for r in rows]], np.int64)
    cumulative = np.zeros((1, len(rows), width))
    event = np.full((1, len(rows), width), -99, np.int64)
    for m, hazards in enumerate(rows):
        cumulative[0, m, : len(hazards)] = np.cumsum(hazards)
        event[0, m, : len(hazards)] = np.arange(len(hazards)) * 7 - 3  # stages and switches
    guide = _kernels._guide_tables(count, cumulative, event)
    bins = _kernels.GUIDE_BINS
    below_one = np.nextafter(1.0, 0.0)
    steps = 0
    for m, hazards in enumerate(rows):
        n = len(hazards)
        for b in range(bins):
            entry = int(guide[0, m, b])
            start, packed = entry & 0xFFFF, entry >> 16
            assert packed == event[0, m, start]
            assert start == _scan_choice(cumulative[0, m], n, b / bins)  # as tight as can be
            top = min(np.nextafter((b + 1) / bins, 0.0), below_one)
            for u in [b / bins, top, *rng.uniform(b / bins, (b + 1) / bins, size=20)]:
                assert int(u * bins) == b
                chosen = _scan_choice(cumulative[0, m], n, u)
                assert start <= chosen, (m, b, u)
                steps += chosen > start
    assert steps > 0  # some picks step beyond the guide's start: that path is exercised too


def test_a_race_skips_the_effects_that_would_change_no_trigger():
    """The race tables send a transition through its effects only where they may change
    the triggers on: switching on one already on (with any probability: no draw) or off
    one already off does nothing, so the event is the target stage itself."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import kernel_model

    compiled = compile_scenario(
        escalate.loads(
            """
scenario: no-op-effects
horizon: 100
start: s
stages: {s: {}, end: {terminal: true}}
triggers: {x: {}, y: {}, z: {}}
transitions:
  - {from: s, to: end, rate: 0.1, effects: {x: on, y: off, z: 0.5}}
"""
        )
    )
    model = kernel_model(compiled)
    s, end = compiled.stage_names.index("s"), compiled.stage_names.index("end")
    _, count, _, event, _ = _kernels._hazard_tables(model)
    with_effects = compiled.n_stages + 0  # the scenario's one transition, j = 0
    x, y, z = (1 << compiled.trigger_names.index(name) for name in "xyz")
    for mask in range(8):
        assert count[s, mask] == 1
        no_op = bool(mask & x) and not mask & y and bool(mask & z)
        assert event[s, mask, 0] == (end if no_op else with_effects), mask


@pytest.mark.parametrize("scenario", ["scenarios/venezuela.yaml", "benchmarks/language.yaml"])
def test_races_chosen_by_guide_tables_count_as_races_chosen_by_a_scan(scenario):
    """The kernel with guide tables (``guided=True``, which a scenario whose races may be
    wide runs) and the kernel with the scan: the same chunks give the same counts, to the
    bit."""
    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import _Batch, guided, kernel_model, switches_off

    compiled = compile_scenario(escalate.load(Path(__file__).parents[2] / scenario))
    sizes = np.array([30_000, 11_000], np.int64)
    rows = {}
    for mode in (None, True):
        batch = _Batch(compiled, 2)
        states = np.stack([chunk_state(4, b) for b in range(2)])
        model = kernel_model(compiled)
        _kernels.run_batch(sizes, states, model, batch.rows, switches_off(compiled), mode)
        rows[mode] = batch.rows
    for name in rows[None]._fields:
        np.testing.assert_array_equal(getattr(rows[None], name), getattr(rows[True], name), name)
    assert rows[None].fired.sum() > 0 and rows[None].at_horizon.sum() == sizes.sum()
    assert guided(compiled) is (True if "venezuela" in scenario else None)


@pytest.mark.parametrize(
    ("path", "n", "expected"),
    [
        ("scenarios/venezuela.yaml", 100_000, "41b5609a1803f121"),
        ("benchmarks/language.yaml", 100_000, "c5900e57c256c981"),  # every key of s. 1.1
        ("scenarios/venezuela.yaml", 300_001, "4646c2951922549f"),  # a short last chunk
    ],
)
def test_a_seeded_run_keeps_its_bits_from_one_version_to_the_next(path, n, expected):
    """Reproducible bit for bit, across versions too: every tally of a seeded run (the
    shipped scenario, and a chain with every key of the richer language) hashes to what
    commit b180640 gave (the run of three chunks, the last short, to what 2106445 gave), on
    one thread and on two. A speed change must leave these alone; a change meant to move the
    figures updates them and says so in its commit."""
    import hashlib

    import numba

    import escalate
    from escalate.engine.compile import compile_scenario
    from escalate.engine.simulate import run_trajectories

    from ..conftest import ROOT

    compiled = compile_scenario(escalate.load(ROOT / path))
    for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        tally = run_trajectories(compiled, n, 7, threads=threads)
        digest = hashlib.sha256()
        for name in sorted(tally.arrays):
            array = np.ascontiguousarray(tally.arrays[name])
            digest.update(name.encode() + str(array.dtype).encode() + array.tobytes())
        assert digest.hexdigest()[:16] == expected, (path, threads)
