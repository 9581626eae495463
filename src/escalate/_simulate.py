"""Run trajectories: fixed-size chunks, one random stream per chunk, batches on numba threads.

Chunk ``i`` always holds trajectories ``i * CHUNK_SIZE`` onwards and draws from the stream
``SeedSequence(seed, spawn_key=(i,))`` (the ``i``-th child of ``SeedSequence(seed).spawn``), so
its counts depend on the seed and its index only. Counts are integers merged by addition, and
the few float sums are merged in chunk order: the same seed gives the same figures, bit for bit,
on any number of threads. Memory is bounded by one batch of per-chunk accumulators, whatever
the number of trajectories.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from escalate import _kernels
from escalate._dask import KERNEL_LOCK, connect, ordered_map, share
from escalate.compile import PATH_CAPACITY, PATH_LENGTH, QUANTILE_BINS, CompiledScenario
from escalate.errors import EscalateError

__all__ = [
    "BATCH_CHUNKS",
    "CHUNK_SIZE",
    "Tally",
    "add_tally",
    "chunk_state",
    "run_trajectories",
]

CHUNK_SIZE = 131_072
BATCH_CHUNKS = 16
PATHS_KEPT = 10_000  # distinct paths kept across batches (the rest count as other paths)


@dataclass
class Tally:
    """Accumulated counts of ``n`` trajectories (times in units of ``horizon / 2**TIME_BITS``).

    ``paths`` maps a path hash to ``[count, length, stage indices]``; ``path_other`` counts
    trajectories whose path did not fit the per-chunk path table.
    """

    n: int
    reach_hist: np.ndarray  # (S, G) first entries by grid index
    quantile_hist: np.ndarray  # (S, 1 + QUANTILE_BINS) first entries at t = 0, then fine bins
    entry_sum: np.ndarray  # (S,) int64 sum of first-entry times (time quanta)
    entry_sq: np.ndarray  # (S,) float64 sum of squared first-entry times
    occupancy_diff: np.ndarray  # (S, G + 1) difference array of occupancy on the grid
    at_horizon: np.ndarray  # (S,)
    time_in: np.ndarray  # (S,) int64 sum of time spent (time quanta)
    time_in_sq: np.ndarray  # (S,) float64 sum of squared time spent per trajectory
    fired: np.ndarray  # (K,)
    paths: dict[int, list] = field(default_factory=dict)
    path_other: int = 0

    @property
    def reached(self) -> np.ndarray:
        """(S,) first entries by the horizon: each falls in one grid bin."""
        return self.reach_hist.sum(axis=1)

    @classmethod
    def empty(cls, n_stages: int, n_triggers: int, n_grid: int) -> Tally:
        s = n_stages
        return cls(
            n=0,
            reach_hist=np.zeros((s, n_grid), np.int64),
            quantile_hist=np.zeros((s, QUANTILE_BINS + 1), np.int64),
            entry_sum=np.zeros(s, np.int64),
            entry_sq=np.zeros(s),
            occupancy_diff=np.zeros((s, n_grid + 1), np.int64),
            at_horizon=np.zeros(s, np.int64),
            time_in=np.zeros(s, np.int64),
            time_in_sq=np.zeros(s),
            fired=np.zeros(n_triggers, np.int64),
        )


def add_tally(total: Tally, part: Tally) -> None:
    """Add ``part`` into ``total`` (the same scenario structure and grid)."""
    for name in (
        "reach_hist",
        "quantile_hist",
        "entry_sum",
        "entry_sq",
        "occupancy_diff",
        "at_horizon",
        "time_in",
        "time_in_sq",
        "fired",
    ):
        getattr(total, name).__iadd__(getattr(part, name))
    total.n += part.n
    total.path_other += part.path_other
    for key, (count, length, stages) in part.paths.items():
        if key in total.paths:
            total.paths[key][0] += count
        else:
            total.paths[key] = [count, length, stages]


def chunk_state(seed: int, chunk: int) -> np.ndarray:
    """The xoshiro256** state of chunk ``chunk``: child ``chunk`` of ``SeedSequence(seed)``."""
    sequence = np.random.SeedSequence(seed, spawn_key=(chunk,))
    state = sequence.generate_state(4, np.uint64)
    if not state.any():  # pragma: no cover - probability 2**-256
        state[0] = 1
    return state


class _Batch:
    """Per-chunk accumulator rows for one batch, reused from batch to batch."""

    def __init__(self, compiled: CompiledScenario, chunks: int):
        s, k, g = compiled.n_stages, compiled.n_triggers, len(compiled.grid)
        b = chunks
        self.reach_hist = np.zeros((b, s, g), np.int64)
        self.quantile_hist = np.zeros((b, s, QUANTILE_BINS + 1), np.int64)
        self.entry_sum = np.zeros((b, s), np.int64)
        self.entry_sq = np.zeros((b, s))
        self.occupancy_diff = np.zeros((b, s, g + 1), np.int64)
        self.at_horizon = np.zeros((b, s), np.int64)
        self.time_in = np.zeros((b, s), np.int64)
        self.time_in_sq = np.zeros((b, s))
        self.fired = np.zeros((b, k), np.int64)
        cap, length = PATH_CAPACITY, PATH_LENGTH
        self.path_keys = np.zeros((b, cap), np.uint64)
        self.path_counts = np.zeros((b, cap), np.int64)
        self.path_lengths = np.zeros((b, cap), np.int64)
        self.path_stages = np.zeros((b, cap, length), np.int16)
        self.path_other = np.zeros((b, 1), np.int64)
        self.stalled = np.zeros((b, 1), np.int64)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.reach_hist,
            self.quantile_hist,
            self.entry_sum,
            self.entry_sq,
            self.occupancy_diff,
            self.at_horizon,
            self.time_in,
            self.time_in_sq,
            self.fired,
            self.path_keys,
            self.path_counts,
            self.path_lengths,
            self.path_stages,
            self.path_other,
            self.stalled,
        )

    def to_tally(self, chunks: int, n: int) -> Tally:
        """The counts of rows ``0 .. chunks - 1`` (``n`` trajectories) as one Tally."""
        tally = Tally(
            n=n,
            reach_hist=self.reach_hist[:chunks].sum(axis=0),
            quantile_hist=self.quantile_hist[:chunks].sum(axis=0),
            entry_sum=self.entry_sum[:chunks].sum(axis=0),
            # float sums: one add a chunk, in chunk order (cumsum is sequential), so they are
            # bit-reproducible whatever runs the batch
            entry_sq=np.cumsum(self.entry_sq[:chunks], axis=0)[-1],
            occupancy_diff=self.occupancy_diff[:chunks].sum(axis=0),
            at_horizon=self.at_horizon[:chunks].sum(axis=0),
            time_in=self.time_in[:chunks].sum(axis=0),
            time_in_sq=np.cumsum(self.time_in_sq[:chunks], axis=0)[-1],
            fired=self.fired[:chunks].sum(axis=0),
            path_other=int(self.path_other[:chunks].sum()),
        )
        # paths: the batch's distinct keys (numpy), in order of first appearance (chunk, then
        # slot), each with its stages
        rows, slots = np.nonzero(self.path_counts[:chunks])
        keys = self.path_keys[rows, slots]
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        counts = np.zeros(len(unique), np.int64)
        np.add.at(counts, inverse, self.path_counts[rows, slots])
        for u in np.argsort(first, kind="stable"):
            b, slot = rows[first[u]], slots[first[u]]
            length = int(self.path_lengths[b, slot])
            stages = self.path_stages[b, slot, : min(length, PATH_LENGTH)]
            tally.paths[int(unique[u])] = [int(counts[u]), length, stages.tolist()]
        _trim_paths(tally)
        return tally


def _trim_paths(tally: Tally) -> None:
    """Keep memory flat on cyclic scenarios, whose distinct paths grow with n: beyond twice
    ``PATHS_KEPT``, drop the rarest. Batches are fixed, so what is dropped does not depend on
    threads or workers."""
    if len(tally.paths) > 2 * PATHS_KEPT:
        ranked = sorted(tally.paths.items(), key=lambda item: (-item[1][0], item[0]))
        for key, entry in ranked[PATHS_KEPT:]:
            tally.path_other += entry[0]
            del tally.paths[key]


def run_trajectories(
    compiled: CompiledScenario,
    n: int,
    seed: int,
    *,
    threads: int | None = None,
    stop: Callable[[Tally], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
) -> Tally:
    """Simulate up to ``n`` trajectories of ``compiled`` and return their counts.

    Parameters
    ----------
    compiled : CompiledScenario
    n : int
        Number of trajectories (the cap when ``stop`` is given).
    seed : int
        Fixes every figure.
    threads : int, optional
        Numba threads (default: all cores). Does not change any figure.
    stop : callable, optional
        Called with the tally after each batch of ``BATCH_CHUNKS`` chunks; the run ends early
        when it returns True (``--precision``).
    progress : callable, optional
        Called as ``progress(done, n)`` after each batch.
    scheduler : str or dask.distributed.Client, optional
        Run the batches as tasks on this Dask cluster; the figures are bit-identical.

    Returns
    -------
    Tally
    """
    if n < 1:
        raise EscalateError(f"the number of trajectories must be at least 1, got {n}")
    previous = numba.get_num_threads()
    if threads is not None:
        if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise EscalateError(
                f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}, got {threads}"
            )
        numba.set_num_threads(threads)
    try:
        with connect(scheduler) as client:
            return _run(compiled, n, seed, stop, progress, client)
    finally:
        numba.set_num_threads(previous)


def launch(c: CompiledScenario, sizes: np.ndarray, states: np.ndarray, batch: _Batch) -> None:
    """Run chunks of ``sizes`` trajectories from generator ``states`` (advanced in place) into
    the rows of ``batch``: the one place the kernel is called."""
    with KERNEL_LOCK:
        _kernels.run_batch(
            sizes,
            states,
            c.start_cdf,
            c.terminal,
            c.out_start,
            c.target,
            c.kind,
            c.p1,
            c.p2,
            c.ratio,
            c.requires,
            c.initial,
            c.onset_rate,
            c.onset_at,
            c.horizon,
            c.grid_step,
            len(c.grid),
            *batch.arrays(),
        )


def _batch_task(
    c: CompiledScenario, n: int, seed: int, first: int, buffer: _Batch | None = None
) -> tuple[Tally, bool]:
    """Run the batch of chunks that starts at chunk ``first`` and sum its chunks: a pure
    function of its arguments (one Dask task, or one step of the in-process loop). Returns the
    batch's counts and whether a trajectory stalled; a worker sends back one row of
    histograms, not one a chunk. ``buffer``: per-chunk rows to reuse (the kernel zeroes the
    rows it uses), so an in-process run allocates them once."""
    n_chunks = -(-n // CHUNK_SIZE)
    chunks = min(BATCH_CHUNKS, n_chunks - first)
    sizes = np.array(
        [min(CHUNK_SIZE, n - (first + b) * CHUNK_SIZE) for b in range(chunks)], np.int64
    )
    states = np.stack([chunk_state(seed, first + b) for b in range(chunks)])
    batch = buffer if buffer is not None else _Batch(c, chunks)
    launch(c, sizes, states, batch)
    return batch.to_tally(chunks, int(sizes.sum())), bool(batch.stalled[:chunks].any())


MAX_BATCH_BYTES = 2 * 1024**3  # per-batch accumulators: refuse a grid that needs more


def _check_memory(c: CompiledScenario) -> None:
    """Refuse, with the figures, a scenario whose per-batch accumulators would not fit."""
    per_chunk = 8 * c.n_stages * (2 * len(c.grid) + QUANTILE_BINS + 8)
    per_chunk += PATH_CAPACITY * (24 + 2 * PATH_LENGTH)
    needed = per_chunk * BATCH_CHUNKS
    if needed > MAX_BATCH_BYTES:
        raise EscalateError(
            f"{c.n_stages} stages on a time grid of {len(c.grid):,} points need "
            f"{needed / 1024**3:.1f} GiB of accumulators per batch (at most "
            f"{MAX_BATCH_BYTES / 1024**3:.0f} GiB): fewer stages or a shorter horizon"
        )


def _run(compiled, n, seed, stop, progress, client=None) -> Tally:
    c = compiled
    _check_memory(c)
    tally = Tally.empty(c.n_stages, c.n_triggers, len(c.grid))
    n_chunks = -(-n // CHUNK_SIZE)
    if client is not None:
        c = share(client, c)  # sent once, not with every task; survives a lost worker
        task = _batch_task
    else:  # in-process: one set of per-chunk rows serves every batch
        task = functools.partial(_batch_task, buffer=_Batch(c, min(BATCH_CHUNKS, n_chunks)))
    batches = ordered_map(
        task,
        ((c, n, seed, first) for first in range(0, n_chunks, BATCH_CHUNKS)),
        client=client,
    )
    try:
        for part, stalled in batches:
            if stalled:
                raise EscalateError(
                    f"a trajectory had more than {_kernels.MAX_EVENTS:,} events before the "
                    f"horizon ({compiled.horizon:g}): some cycle of transitions or trigger "
                    "switches is far too fast for the horizon; slow it down or shorten the horizon"
                )
            add_tally(tally, part)
            _trim_paths(tally)
            if progress is not None:
                progress(tally.n, n)
            if stop is not None and stop(tally):
                break
    finally:
        batches.close()  # cancels tasks still in flight after a stop or an interrupt
    return tally
