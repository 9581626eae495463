"""Run trajectories: fixed-size chunks, one random stream per chunk, batches on numba threads.

Chunk ``i`` always holds trajectories ``i * CHUNK_SIZE`` onwards and draws from the stream
``SeedSequence(seed, spawn_key=(i,))`` (the ``i``-th child of ``SeedSequence(seed).spawn``), so
its counts depend on the seed and its index only. A run with a stop rule (``--precision``)
first runs the first 1,024, 1,024, 2,048 ... 65,536 trajectories of chunks 0 to 7, then whole
chunks from chunk 8 on, in batches that double: it stops within about twice what it needs.
Counts are integers merged by addition, and the few float sums are merged in chunk order: the
same seed gives the same figures, bit for bit, on any number of threads. Memory is bounded by
one batch of per-chunk accumulators, whatever the number of trajectories.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from escalate.engine import kernels as _kernels
from escalate.engine.cluster import connect, ordered_map, share
from escalate.engine.compile import (
    PATH_CAPACITY,
    PATH_LENGTH,
    QUANTILE_BINS,
    TIME_BITS,
    CompiledScenario,
)
from escalate.errors import EscalateError

__all__ = [
    "ACCUMULATORS",
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


# How a batch's per-chunk rows merge into a Tally: integer counts add; float sums add one
# chunk at a time in chunk order (bit-reproducible whatever runs the batch); the path table
# becomes the tally's path dictionary; a count becomes one integer; a flag is read, not kept.
SUM, ORDERED, PATHS, COUNT, FLAG = "sum", "ordered", "paths", "count", "flag"


@dataclass(frozen=True)
class Accumulator:
    """One array the kernel fills for each chunk: its name (the kernel reads ``acc.<name>``),
    dtype, per-chunk shape from (stages, triggers, grid points), and merge rule."""

    name: str
    dtype: type
    shape: Callable[[int, int, int], tuple[int, ...]]
    merge: str
    doc: str


# The one list of the kernel's accumulators: the batch rows, the kernel's argument, the empty
# tally, the merge and the tests all come from it. Times are in units of horizon / 2**TIME_BITS.
ACCUMULATORS = (
    Accumulator("reach_hist", np.int64, lambda s, k, g: (s, g), SUM,
                "first entries by grid index"),
    Accumulator("quantile_hist", np.int64, lambda s, k, g: (s, 1 + QUANTILE_BINS), SUM,
                "first entries at t = 0, then in fine bins over (0, horizon]"),
    Accumulator("entry_sum", np.int64, lambda s, k, g: (s,), SUM,
                "sum of first-entry times (time quanta)"),
    Accumulator("entry_sq", np.float64, lambda s, k, g: (s,), ORDERED,
                "sum of squared first-entry times"),
    Accumulator("occupancy_diff", np.int64, lambda s, k, g: (s, g + 1), SUM,
                "difference array of occupancy on the grid"),
    Accumulator("at_horizon", np.int64, lambda s, k, g: (s,), SUM,
                "trajectories in each stage at the horizon"),
    Accumulator("time_in", np.int64, lambda s, k, g: (s,), SUM,
                "sum of time spent (time quanta)"),
    Accumulator("time_in_sq", np.float64, lambda s, k, g: (s,), ORDERED,
                "sum of squared time spent per trajectory"),
    Accumulator("fired", np.int64, lambda s, k, g: (k,), SUM,
                "trajectories in which each trigger was on at some time"),
    Accumulator("on_at_horizon", np.int64, lambda s, k, g: (k,), SUM,
                "trajectories in which each trigger is on at the horizon"),
    Accumulator("time_on", np.int64, lambda s, k, g: (k,), SUM,
                "sum of time each trigger was on (time quanta)"),
    Accumulator("time_on_sq", np.float64, lambda s, k, g: (k,), ORDERED,
                "sum of squared time on per trajectory"),
    Accumulator("path_keys", np.uint64, lambda s, k, g: (PATH_CAPACITY,), PATHS,
                "path table: the hash of each slot's path"),
    Accumulator("path_counts", np.int64, lambda s, k, g: (PATH_CAPACITY,), PATHS,
                "path table: trajectories of each slot's path"),
    Accumulator("path_lengths", np.int64, lambda s, k, g: (PATH_CAPACITY,), PATHS,
                "path table: stages visited by each slot's path"),
    Accumulator("path_stages", np.int16, lambda s, k, g: (PATH_CAPACITY, PATH_LENGTH), PATHS,
                "path table: the first PATH_LENGTH stages of each slot's path"),
    Accumulator("path_other", np.int64, lambda s, k, g: (1,), COUNT,
                "trajectories whose path found no free slot"),
    Accumulator("stalled", np.int64, lambda s, k, g: (1,), FLAG,
                "1 if a trajectory passed the kernel's limit of events"),
)  # fmt: skip
Accumulators = namedtuple("Accumulators", [a.name for a in ACCUMULATORS])
_TALLIED = tuple(a for a in ACCUMULATORS if a.merge in (SUM, ORDERED))

# What the kernel reads of a compiled scenario, by name (``model.<name>``).
KernelModel = namedtuple(
    "KernelModel",
    "start_cdf terminal out_start target kind p1 p2 ratio requires initial onset_rate onset_at "
    "onset_ratio offset_rate offset_ratio effect_start effect_trigger effect_value "
    "horizon step n_grid time_bits trajectory_streams",
)


def kernel_model(c: CompiledScenario) -> KernelModel:
    """The arrays and numbers of ``c`` the kernel runs on (numba types it by them)."""
    derived = {"step": c.grid_step, "n_grid": len(c.grid), "time_bits": TIME_BITS}
    return KernelModel(
        **{name: derived[name] if name in derived else getattr(c, name) for name in
           KernelModel._fields}
    )  # fmt: skip


@dataclass
class Paths:
    """Distinct paths as arrays, one row a path: its hash ``keys``, ``counts`` of
    trajectories, ``lengths`` (stages visited) and first ``PATH_LENGTH`` ``stages``. Arrays,
    not a dictionary: a cyclic scenario has tens of thousands of paths a batch, and merging
    them one by one in Python took a tenth of the run."""

    keys: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray
    stages: np.ndarray

    @classmethod
    def empty(cls) -> Paths:
        return cls(
            np.zeros(0, np.uint64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, PATH_LENGTH), np.int16),
        )

    def __len__(self) -> int:
        return len(self.keys)

    def merged(self, *others: Paths) -> Paths:
        """These paths and ``others``, one row per distinct key (its counts added), in key
        order."""
        parts = (self, *others)
        keys = np.concatenate([p.keys for p in parts])
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        counts = np.zeros(len(unique), np.int64)
        np.add.at(counts, inverse, np.concatenate([p.counts for p in parts]))
        lengths = np.concatenate([p.lengths for p in parts])[first]
        stages = np.concatenate([p.stages for p in parts])[first]
        return Paths(unique, counts, lengths, stages)

    def trim(self, kept: int, above: int) -> int:
        """Beyond ``above`` paths, keep the ``kept`` most frequent (ties: smaller key first);
        returns the trajectories of the paths dropped."""
        if len(self) <= above:
            return 0
        order = np.lexsort((self.keys, -self.counts))
        dropped = int(self.counts[order[kept:]].sum())
        keep = np.sort(order[:kept])
        self.keys, self.counts = self.keys[keep], self.counts[keep]
        self.lengths, self.stages = self.lengths[keep], self.stages[keep]
        return dropped

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and all(
            np.array_equal(getattr(self, f), getattr(other, f))
            for f in ("keys", "counts", "lengths", "stages")
        )


class Tally:
    """Accumulated counts of ``n`` trajectories: one array per summed accumulator, read as an
    attribute (``tally.reach_hist``, see ``ACCUMULATORS``), ``paths`` the distinct paths
    (:class:`Paths`) and ``path_other``, the trajectories whose path did not fit the per-chunk
    path table."""

    def __init__(self, n: int, arrays: dict[str, np.ndarray], paths=None, path_other: int = 0):
        self.n = n
        self.arrays = arrays
        self.paths: Paths = Paths.empty() if paths is None else paths
        self.path_other = path_other

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def reached(self) -> np.ndarray:
        """(S,) first entries by the horizon: each falls in one grid bin."""
        return self.reach_hist.sum(axis=1)

    @classmethod
    def empty(cls, n_stages: int, n_triggers: int, n_grid: int) -> Tally:
        dims = (n_stages, n_triggers, n_grid)
        return cls(0, {a.name: np.zeros(a.shape(*dims), a.dtype) for a in _TALLIED})


def add_tally(total: Tally, part: Tally) -> None:
    """Add ``part`` into ``total`` (the same scenario structure and grid)."""
    for a in _TALLIED:
        total.arrays[a.name] += part.arrays[a.name]
    total.n += part.n
    total.path_other += part.path_other
    total.paths = total.paths.merged(part.paths)


def chunk_state(seed: int, chunk: int) -> np.ndarray:
    """The xoshiro256** state of chunk ``chunk``: child ``chunk`` of ``SeedSequence(seed)``."""
    sequence = np.random.SeedSequence(seed, spawn_key=(chunk,))
    state = sequence.generate_state(4, np.uint64)
    if not state.any():  # pragma: no cover - probability 2**-256
        state[0] = 1
    return state


CACHE_LINE = 64  # bytes


def aligned_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """Zeros of ``shape``, C-contiguous, starting on a cache line."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def chunk_rows(chunks: int, shape: tuple[int, ...], dtype, pad: bool = True) -> np.ndarray:
    """Zeros of ``(chunks, *shape)`` in which every chunk's row starts on a cache line of its
    own: with ``pad``, a short row (one value per stage or trigger) is padded to whole lines.
    Threads running neighbouring chunks then never write to one line (false sharing cost up
    to a third of the speed of two threads). Not for rows whose length the kernel reads."""
    if pad and len(shape) == 1:
        per_line = CACHE_LINE // np.dtype(dtype).itemsize
        shape = (-(-shape[0] // per_line) * per_line,)
    return aligned_zeros((chunks, *shape), dtype)


def chunk_states(seed: int, first: int, chunks: int) -> np.ndarray:
    """The generators of chunks ``first ..``, one row each, on cache lines of their own (the
    kernel writes a chunk's generator back as it runs)."""
    states = chunk_rows(chunks, (4,), np.uint64)
    states[:, :4] = [chunk_state(seed, first + b) for b in range(chunks)]
    return states


class _Batch:
    """Per-chunk accumulator rows for one batch (``rows``: an ``Accumulators`` of arrays with
    a leading chunk axis, short rows padded: see ``chunk_rows``), reused from batch to
    batch."""

    def __init__(self, compiled: CompiledScenario, chunks: int):
        dims = (compiled.n_stages, compiled.n_triggers, len(compiled.grid))
        self.shapes = {a.name: a.shape(*dims) for a in ACCUMULATORS}
        # the path table's size is its length (the kernel reads it): never padded
        self.rows = Accumulators(
            *(
                chunk_rows(chunks, self.shapes[a.name], a.dtype, pad=a.merge != PATHS)
                for a in ACCUMULATORS
            )
        )

    def to_tally(self, chunks: int, n: int) -> Tally:
        """The counts of rows ``0 .. chunks - 1`` (``n`` trajectories) as one Tally."""
        arrays = {}
        for a in _TALLIED:
            shape = self.shapes[a.name]
            rows = getattr(self.rows, a.name)[
                (slice(0, chunks), *(slice(0, size) for size in shape))
            ]
            # float sums: one add a chunk, in chunk order (cumsum is sequential)
            arrays[a.name] = rows.sum(axis=0) if a.merge == SUM else np.cumsum(rows, axis=0)[-1]
        r = self.rows
        rows, slots = np.nonzero(r.path_counts[:chunks])
        paths = Paths(
            r.path_keys[rows, slots],
            r.path_counts[rows, slots],
            r.path_lengths[rows, slots],
            r.path_stages[rows, slots],
        ).merged()
        tally = Tally(n, arrays, paths, path_other=int(r.path_other[:chunks].sum()))
        _trim_paths(tally)
        return tally


def _trim_paths(tally: Tally) -> None:
    """Keep memory flat on cyclic scenarios, whose distinct paths grow with n: beyond twice
    ``PATHS_KEPT``, drop the rarest. Batches are fixed, so what is dropped does not depend on
    threads or workers."""
    tally.path_other += tally.paths.trim(PATHS_KEPT, 2 * PATHS_KEPT)


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
        Called with the tally after each batch; the run ends early when it returns True (a
        ``precision`` reached). Batches then grow from 1,024 trajectories, doubling.
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
            raise EscalateError.about(
                "{threads} must be between 1 and {}, got {}",
                numba.config.NUMBA_NUM_THREADS,
                threads,
            )
        numba.set_num_threads(threads)
    try:
        with connect(scheduler) as client:
            return _run(compiled, n, seed, stop, progress, client)
    finally:
        numba.set_num_threads(previous)


# One parallel numba launch at a time in a process: Dask runs tasks on several threads of a
# worker, and numba's default threading layer must not be entered from two threads at once.
KERNEL_LOCK = threading.Lock()


def switches_off(c: CompiledScenario) -> bool | None:
    """True when some trigger of ``c`` can switch off (an offset, or an ``off`` effect), else
    None: the kernel then compiles without the bookkeeping of triggers going off."""
    return True if any(c.can_switch_off(k) for k in range(c.n_triggers)) else None


def guided(c: CompiledScenario) -> bool | None:
    """True when a hazard race of ``c`` may have more than ``GUIDE_WIDTH`` events, else None:
    the kernel then compiles the plain scan, faster on short races (see
    ``_kernels._guide_tables``). Both choose the same events.

    The width is the tables' own bound, the most ways out of a stage plus the triggers, read
    without building the tables: the shipped scenario's bound is 9 (its widest race has 8
    events), and the guide gains it a few per cent all the same."""
    if c.n_triggers > _kernels.TABLE_TRIGGERS:  # no tables: races compute their hazards
        return None
    width = int(np.diff(c.out_start).max(initial=0)) + c.n_triggers
    return True if width > _kernels.GUIDE_WIDTH else None


def launch(c: CompiledScenario, sizes: np.ndarray, states: np.ndarray, batch: _Batch) -> None:
    """Run chunks of ``sizes`` trajectories from generator ``states`` (advanced in place) into
    the rows of ``batch``: the one place the kernel is called."""
    arguments = (sizes, states, kernel_model(c), batch.rows, switches_off(c), guided(c))
    with KERNEL_LOCK:
        _say_if_compiling(arguments)
        _kernels.run_batch(*arguments)


# the kernel's first compilation, measured on this project's 2-core machine (an empty cache)
COMPILE_SECONDS = 45
_CHECKED: set = set()  # the kernel's flags (switches off, guided) this process has checked


def _say_if_compiling(arguments: tuple) -> None:
    """Before the kernel's first call with these argument types: when numba holds them
    neither in memory nor in its disk cache, log (logger ``escalate``, INFO; the command line
    prints it) that it compiles now, for nothing else is said until it is done. Reads numba's
    cache index by its private API; if that API changes, says nothing rather than guess."""
    # the arrays' types are fixed by the code; the flags pick the specialization: once each
    flags = arguments[-2:]
    if flags in _CHECKED:
        return
    _CHECKED.add(flags)
    kernel = _kernels.run_batch
    try:
        types = tuple(kernel.typeof_pyval(a) for a in arguments)
        if types in kernel.overloads:
            return
        cache = kernel._cache
        key = cache._index_key(types, kernel.targetctx.codegen())
        cached = key in cache._cache_file._load_index()
    except Exception:  # pragma: no cover - numba's private cache API changed
        return
    if not cached:
        logging.getLogger("escalate").info(
            "compiling the simulation kernel once (about %d s on 2 cores; later runs start at "
            "once)",
            COMPILE_SECONDS,
        )


def _batch_task(
    c: CompiledScenario,
    n: int,
    seed: int,
    first: int,
    size: int = BATCH_CHUNKS,
    buffer: _Batch | None = None,
) -> tuple[Tally, bool]:
    """Run the batch of ``size`` chunks (fewer at the end) that starts at chunk ``first`` and
    sum its chunks: a pure function of its arguments (one Dask task, or one step of the
    in-process loop). Returns the batch's counts and whether a trajectory stalled; a worker
    sends back one row of histograms, not one a chunk. ``buffer``: per-chunk rows to reuse
    (the kernel zeroes the rows it uses), so an in-process run allocates them once."""
    n_chunks = -(-n // CHUNK_SIZE)
    chunks = min(size, n_chunks - first)
    sizes = np.array(
        [min(CHUNK_SIZE, n - (first + b) * CHUNK_SIZE) for b in range(chunks)], np.int64
    )
    states = chunk_states(seed, first, chunks)
    batch = buffer if buffer is not None else _Batch(c, chunks)
    launch(c, sizes, states, batch)
    return batch.to_tally(chunks, int(sizes.sum())), bool(batch.rows.stalled[:chunks].any())


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
    """Run the chunks in batches of ``BATCH_CHUNKS``; with a ``stop`` rule, in batches that
    grow geometrically from a small first one instead (:func:`_head`, then 1, 2, 4, 8 chunks
    before full batches), so that a precision target stops within about twice the
    trajectories it needs. Either way the trajectories are the first ones of the seed's
    chunks, in order."""
    c = compiled
    _check_memory(c)
    tally = Tally.empty(c.n_stages, c.n_triggers, len(c.grid))
    n_chunks, total = -(-n // CHUNK_SIZE), n

    def absorb(part: Tally, stalled: bool) -> bool:
        """Add a batch's counts; True when the run should stop."""
        if stalled:
            raise EscalateError(
                f"a trajectory had more than {_kernels.MAX_EVENTS:,} events before the "
                f"horizon ({compiled.horizon:g}): some cycle of transitions or trigger "
                "switches is far too fast for the horizon; slow it down or shorten the horizon"
            )
        add_tally(tally, part)
        _trim_paths(tally)
        if progress is not None:
            progress(tally.n, total)
        return stop is not None and stop(tally)

    starts = [(first, BATCH_CHUNKS) for first in range(0, n_chunks, BATCH_CHUNKS)]
    if stop is not None:
        if any(absorb(*part) for part in _head(c, min(n, CHUNK_SIZE), seed)):
            return tally
        # the head used chunks 0 .. HEAD_CHUNKS - 1 for one chunk's worth of trajectories:
        # the rest run in whole chunks from there, 1, 2, 4, 8 and then 16 at a time
        n += (HEAD_CHUNKS - 1) * CHUNK_SIZE
        n_chunks = -(-n // CHUNK_SIZE)
        starts, first, size = [], HEAD_CHUNKS, 1
        while first < n_chunks:
            starts.append((first, size))
            first, size = first + size, min(2 * size, BATCH_CHUNKS)
    if client is not None:
        c = share(client, c)  # sent once, not with every task; survives a lost worker
        task = _batch_task
    else:  # in-process: one set of per-chunk rows serves every batch
        task = functools.partial(_batch_task, buffer=_Batch(c, min(BATCH_CHUNKS, n_chunks)))
    batches = ordered_map(task, ((c, n, seed, *start) for start in starts), client=client)
    try:
        for part, stalled in batches:
            if absorb(part, stalled):
                break
    finally:
        batches.close()  # cancels tasks still in flight after a stop or an interrupt
    return tally


HEAD_FIRST = 1024  # trajectories in the first batch of a run with a stop rule
HEAD_CHUNKS = 8  # the batches of 1,024, 1,024, 2,048 ... 65,536: one chunk's worth


def _head(c: CompiledScenario, n: int, seed: int):
    """The first batches of a run with a stop rule: ``n`` trajectories (at most a chunk's
    worth) in batches of 1,024, 1,024, 2,048, 4,096 ..., batch k the first trajectories of
    chunk k (its own stream, as every chunk), so that a precision target of a few thousand
    trajectories stops after a few thousand. Yields each batch's counts and whether a
    trajectory stalled. Run here, also for a Dask run: it is a chunk's work at most."""
    buffer = _Batch(c, 1)
    done, size = 0, HEAD_FIRST
    for chunk in range(HEAD_CHUNKS):
        size = min(size, n - done)
        if size <= 0:
            return
        launch(c, np.array([size], np.int64), chunk_states(seed, chunk, 1), buffer)
        yield buffer.to_tally(1, size), bool(buffer.rows.stalled[:1].any())
        done += size
        size = done  # the total doubles
