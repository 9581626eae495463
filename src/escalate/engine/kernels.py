"""Numba kernels: trajectories on compiled arrays, with streaming integer accumulators.

What is jitted and why: the per-trajectory event loop (``_run_chunk``) and the parallel batch
driver (``run_batch``), because a Python loop would cost a microsecond per event. Everything
here takes and writes numpy arrays only; ``simulate.py`` prepares them. All kernels are compiled
on first call (never at import) and cached on disk (``cache=True``), so a second process does
not compile again.

Random numbers come from an inline xoshiro256** generator, one per chunk, seeded from
``SeedSequence(seed).spawn``: about 1 ns a draw, and a chunk's draws do not depend on which
thread runs it, so results are bit-identical for any thread count. The hazard race draws its
Exp(1) waits by a ziggurat (no logarithm in 99% of draws), one race ahead, so that no draw holds
up the branches that follow it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import literal_unroll, njit, prange

# The timing kinds' codes (``escalate.engine.compile`` gives transitions these codes; a test checks
# that the two agree). Kept here, not imported: numba's disk cache bakes a global into the
# compiled kernel and notices a change of this file only.
EXPONENTIAL, FIXED, UNIFORM, GAMMA, WEIBULL, LOGNORMAL = range(6)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
MAX_EVENTS = 10_000_000  # events in one trajectory before the chunk gives up (see _run_chunk)
TABLE_TRIGGERS = 8  # hazard tables per (stage, triggers on) up to this many triggers
GUIDE_BINS = 32  # guide entries per race row (a power of two: see _guide_tables)
GUIDE_WIDTH = 8  # races wider than this many events choose their event by a guide table
_GUIDE_SHIFT = np.int64(16)  # a guide entry: its event above these bits, its start below
_GUIDE_START = np.int64((1 << 16) - 1)  # the largest start a guide entry holds

_ROT_A, _ROT_B = np.uint64(7), np.uint64(45)
_SHIFT = np.uint64(17)
_FIVE, _NINE = np.uint64(5), np.uint64(9)
_SIXTY_FOUR = np.uint64(64)
_MANTISSA_SHIFT = np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_ONE = np.int64(1)
_U_ONE = np.uint64(1)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment
_MIX_A, _MIX_B = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _exponential_ziggurat() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables of the 256-layer ziggurat for Exp(1) on 53-bit integers (Marsaglia and Tsang,
    2000, as numpy's legacy sampler builds them): ``ke`` the acceptance bounds, ``we`` the
    widths per unit, ``fe`` the density at each layer's edge."""
    r, v, m = 7.69711747013104972, 3.9496598225815571993e-3, 2.0**53
    ke, we, fe = np.zeros(256, np.uint64), np.zeros(256), np.zeros(256)
    de = te = r
    q = v / math.exp(-de)
    ke[0] = np.uint64((de / q) * m)
    we[0], we[255] = q / m, de / m
    fe[0], fe[255] = 1.0, math.exp(-de)
    for i in range(254, 0, -1):
        de = -math.log(v / de + math.exp(-de))
        ke[i + 1] = np.uint64((de / te) * m)
        te = de
        fe[i] = math.exp(-de)
        we[i] = de / m
    return ke, we, fe


_ZIG_KE, _ZIG_WE, _ZIG_FE = _exponential_ziggurat()
_ZIG_R = 7.69711747013104972  # where the base layer's exponential tail starts
_THREE, _EIGHT, _BYTE = np.uint64(3), np.uint64(8), np.uint64(0xFF)


@njit(inline="always", **_JIT)
def _rotl(x, k):
    return (x << k) | (x >> (_SIXTY_FOUR - k))


@njit(inline="always", **_JIT)
def _next_bits(s0, s1, s2, s3):
    """The 64-bit output of xoshiro256** on a state held in four scalars, and the new state."""
    result = _rotl(s1 * _FIVE, _ROT_A) * _NINE
    t = s1 << _SHIFT
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, _ROT_B)
    return result, s0, s1, s2, s3


@njit(inline="always", **_JIT)
def _next(s0, s1, s2, s3):
    """A double in [0, 1) from xoshiro256** on a state held in four scalars, so the kernel's
    loop keeps its generator in locals. Returns the double and the new state."""
    bits, s0, s1, s2, s3 = _next_bits(s0, s1, s2, s3)
    return (bits >> _MANTISSA_SHIFT) * _TO_UNIT, s0, s1, s2, s3


@njit(inline="always", **_JIT)
def _splitmix(x):
    """splitmix64: the next output and state (the seeding generator xoshiro's authors give)."""
    x = x + _GOLDEN
    z = x
    z = (z ^ (z >> _S30)) * _MIX_A
    z = (z ^ (z >> _S27)) * _MIX_B
    return z ^ (z >> _S31), x


@njit(inline="always", **_JIT)
def _trajectory_state(state, trajectory, part):
    """A generator of its own for part ``part`` (the stages entered so far) of trajectory
    ``trajectory`` of the chunk whose first state is ``state``: four splitmix64 outputs from
    the chunk's words, the trajectory's index and the part, each mixed in as a word of its own
    (distinct for any chunk size and any number of stages)."""
    x = state[0] ^ (np.uint64(trajectory) * _MIX_B) ^ _rotl(state[1], _SHIFT)
    r0, x = _splitmix(x)
    r1, x = _splitmix(x ^ state[2] ^ (np.uint64(part) * _MIX_A))
    r2, x = _splitmix(x ^ state[3])
    r3, x = _splitmix(x)
    return r0, r1, r2, r3


@njit(inline="always", **_JIT)
def _uniform(state):
    """A double in [0, 1) from xoshiro256** (state: uint64[4], advanced in place)."""
    u, s0, s1, s2, s3 = _next(state[0], state[1], state[2], state[3])
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return u


@njit(inline="always", **_JIT)
def _ziggurat_layer(s0, s1, s2, s3):
    """One output split as the ziggurat uses it: 53 bits ``ri``, a layer ``idx`` and the
    candidate ``x = ri * we[idx]``; with the new state."""
    bits, s0, s1, s2, s3 = _next_bits(s0, s1, s2, s3)
    ri = bits >> _THREE
    idx = ri & _BYTE  # unsigned: numba then adds no code for negative indices
    ri >>= _EIGHT
    return ri, idx, ri * _ZIG_WE[idx], s0, s1, s2, s3


@njit(**_JIT)
def _exponential_rare(idx, x, s0, s1, s2, s3):
    """The 1% of ziggurat draws outside a layer's rectangle (kept out of the hot loop)."""
    while True:
        u, s0, s1, s2, s3 = _next(s0, s1, s2, s3)
        if idx == 0:  # the base layer's tail: r plus an exponential
            return _ZIG_R - math.log1p(-u), s0, s1, s2, s3
        if (_ZIG_FE[idx - _U_ONE] - _ZIG_FE[idx]) * u + _ZIG_FE[idx] < math.exp(-x):
            return x, s0, s1, s2, s3
        ri, idx, x, s0, s1, s2, s3 = _ziggurat_layer(s0, s1, s2, s3)
        if ri < _ZIG_KE[idx]:
            return x, s0, s1, s2, s3


@njit(inline="always", **_JIT)
def _next_exponential(s0, s1, s2, s3):
    """An Exp(1) draw by the ziggurat: 99% of draws take one output, a table lookup and a
    product, no logarithm. Returns the draw and the new state."""
    ri, idx, x, s0, s1, s2, s3 = _ziggurat_layer(s0, s1, s2, s3)
    if ri < _ZIG_KE[idx]:
        return x, s0, s1, s2, s3
    return _exponential_rare(idx, x, s0, s1, s2, s3)


@njit(**_JIT)
def draw_exponentials(state, out):
    """Fill ``out`` with the kernel's Exp(1) draws (the ziggurat; for tests of the sampler)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.shape[0]):
        out[i], s0, s1, s2, s3 = _next_exponential(s0, s1, s2, s3)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@njit(inline="always", **_JIT)
def _exponential(state):
    return -math.log(1.0 - _uniform(state))


@njit(**_JIT)
def _normal(state):
    u1 = 1.0 - _uniform(state)
    u2 = _uniform(state)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(**_JIT)
def _gamma(state, shape, scale):
    """Marsaglia and Tsang (2000); shapes below 1 through the boost u**(1/shape)."""
    boost = 1.0
    if shape < 1.0:
        boost = (1.0 - _uniform(state)) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = _normal(state)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        u = 1.0 - _uniform(state)
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v * scale * boost


@njit(**_JIT)
def _latent(state, kind, p1, p2):
    """A latent duration (the clock amount until the transition fires)."""
    if kind == EXPONENTIAL:
        return _exponential(state) / p1
    if kind == FIXED:
        return p1
    if kind == UNIFORM:
        return p1 + (p2 - p1) * _uniform(state)
    if kind == GAMMA:
        return _gamma(state, p1, p2)
    if kind == WEIBULL:
        return p2 * _exponential(state) ** (1.0 / p1)
    return math.exp(p1 + p2 * _normal(state))  # LOGNORMAL


@njit(**_JIT)
def draw_latent(state, kind, p1, p2, out):
    """Fill ``out`` with latent durations of one timing kind (for tests of the samplers)."""
    for i in range(out.shape[0]):
        out[i] = _latent(state, kind, p1, p2)


@njit(inline="always", **_JIT)
def _grid_index(t, step, per_step, n_grid):
    """Index of the first grid point at or after ``t`` (the last point is the horizon).

    ``t / step``, exact when ``t`` falls on a grid point: a multiplication by ``per_step``
    when that is ``1 / step`` exactly (a power of two, as the default step of 1 is), else a
    division (``per_step`` 0). The ceiling as truncation plus one if short: no rounding
    instruction on the way to the index."""
    q = t * per_step if per_step > 0.0 else t / step
    g = np.int64(q)
    g += g < q
    return g if g < n_grid - 1 else n_grid - 1


@njit(inline="always", **_JIT)
def _speed(j, on, requires, ratio):
    """Clock speed of transition ``j`` with the triggers ``on``: 0 while a required trigger is
    off, else the product of the ``when`` ratios of the triggers that are on."""
    if (requires[j] & on) != requires[j]:
        return 0.0
    sp = 1.0
    rest = on
    k = 0
    while rest:
        if rest & 1:
            sp *= ratio[j, k]
        rest >>= 1
        k += 1
    return sp


@njit(inline="always", **_JIT)
def _switch_hazard(k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio):
    """Hazard of trigger ``k`` switching (on if off, off if on) in stage ``s`` with the
    triggers ``on``: its onset or offset rate times the `when` ratios of the others on."""
    if (on >> k) & 1:
        hazard = offset_rate[k, s]
        ratios = offset_ratio
    else:
        hazard = onset_rate[k, s]
        ratios = onset_ratio
    if hazard == 0.0:
        return 0.0
    rest = on
    m = 0
    while rest:
        if rest & 1:
            hazard *= ratios[k, s, m]
        rest >>= 1
        m += 1
    return hazard


@njit(inline="always", **_JIT)
def _effects_change(j, on, effect_start, effect_trigger, effect_value):
    """Whether the effects of transition ``j`` may do anything with the triggers ``on``: an
    effect that switches on a trigger already on (with any probability, drawing nothing) or
    off one already off changes nothing, and a list of such effects needs no pass at all.
    ``_effects`` applies the same rule through branches of its own: written through one
    shared predicate, its pass ran 8% slower on the generated ladder with effects."""
    for e in range(effect_start[j], effect_start[j + 1]):
        is_on = (on >> effect_trigger[e]) & 1
        value = effect_value[e]
        if (value < 0.0 and is_on) or (value > 0.0 and not is_on):
            return True
    return False


@njit(**_JIT)
def _hazard_tables(model):
    """Per (stage, triggers on): the events that can happen in a memoryless stage, with their
    cumulative hazards, so that an event costs a table lookup instead of recomputing speeds.

    Returns ``memoryless[s]`` (every way out exponential), ``count[s, mask]``, and per event
    ``cumulative[s, mask, i]`` and ``event[s, mask, i]`` (the stage a transition leads to, or
    ``n_stages + j`` for a transition ``j`` whose effects may change the triggers ``mask``
    (see ``_effects_change``), or a trigger switch ``-(k + 1)``: on if
    it is off, off if it is on), and ``mean_wait[s, mask]``,
    1 / total hazard (inf if none). Tables span every mask only for up to ``TABLE_TRIGGERS``
    triggers; beyond, they are empty and the kernel computes hazards as it goes.
    """
    out_start, kind, p1 = model.out_start, model.kind, model.p1
    requires, ratio, onset_rate = model.requires, model.ratio, model.onset_rate
    n_stages = out_start.shape[0] - 1
    n_triggers = onset_rate.shape[0]
    memoryless = np.ones(n_stages, dtype=np.bool_)
    max_out = 0
    for s in range(n_stages):
        max_out = max(max_out, out_start[s + 1] - out_start[s])
        for j in range(out_start[s], out_start[s + 1]):
            if kind[j] != EXPONENTIAL:
                memoryless[s] = False
    masks = 1 << n_triggers if n_triggers <= TABLE_TRIGGERS else 0
    width = max_out + n_triggers
    count = np.zeros((n_stages, masks), dtype=np.int64)
    cumulative = np.zeros((n_stages, masks, max(width, 1)))
    event = np.zeros((n_stages, masks, max(width, 1)), dtype=np.int64)
    for s in range(n_stages):
        if not memoryless[s]:
            continue
        for mask in range(masks):
            total, i = 0.0, 0
            for j in range(out_start[s], out_start[s + 1]):
                hazard = p1[j] * _speed(j, mask, requires, ratio)
                if hazard > 0.0:
                    total += hazard
                    cumulative[s, mask, i] = total
                    changes = _effects_change(
                        j, mask, model.effect_start, model.effect_trigger, model.effect_value
                    )
                    event[s, mask, i] = n_stages + j if changes else model.target[j]
                    i += 1
            for k in range(n_triggers):
                hazard = _switch_hazard(
                    k, s, mask, onset_rate, model.onset_ratio, model.offset_rate,
                    model.offset_ratio,
                )  # fmt: skip
                if hazard > 0.0:
                    total += hazard
                    cumulative[s, mask, i] = total
                    event[s, mask, i] = -(k + 1)
                    i += 1
            count[s, mask] = i
    # 1 / total hazard: the kernel multiplies an Exp(1) by it rather than divide
    mean_wait = np.full(count.shape, np.inf)
    for s in range(n_stages):
        for mask in range(masks):
            if count[s, mask] > 0:
                mean_wait[s, mask] = 1.0 / cumulative[s, mask, count[s, mask] - 1]
    return memoryless, count, cumulative, event, mean_wait


@njit(**_JIT)
def _guide_tables(count, cumulative, event):
    """Guide tables (Chen and Asau's) for the races of ``_hazard_tables``: the event a race
    chooses, found from its uniform ``u`` with one load instead of a scan of the row.

    Bin ``b = floor(u * GUIDE_BINS)`` of a row holds ``start``: how many of the row's events
    but the last have a cumulative hazard at most ``(b / GUIDE_BINS) * total`` (that product
    rounded as the kernel rounds ``u * total``), capped at 65535, packed with the event at
    ``start``. The bins being a power of two, ``u >= b / GUIDE_BINS`` exactly, so by the
    monotony of rounding the pick ``u * total`` is at least that product: the event the full
    scan chooses lies at or after ``start``, and the kernel steps on from there when the pick
    passes the next cumulative hazard (in about 6% of the races of the shipped scenario). The
    same event as the scan, to the bit."""
    n_stages, masks, _ = cumulative.shape
    guide = np.zeros((n_stages, masks, GUIDE_BINS), dtype=np.int64)
    for s in range(n_stages):
        for mask in range(masks):
            n_events = count[s, mask]
            if n_events == 0:
                continue
            total = cumulative[s, mask, n_events - 1]
            i = 0
            for b in range(GUIDE_BINS):
                low = (b / GUIDE_BINS) * total  # the bin's smallest pick, rounded as u * total
                while i < n_events - 1 and cumulative[s, mask, i] <= low:
                    i += 1
                start = min(i, _GUIDE_START)  # any start at or before the event is exact
                guide[s, mask, b] = (event[s, mask, start] << _GUIDE_SHIFT) | start
    return guide


@njit(inline="always", **_JIT)
def _toggle(k, t, on, trajectory, clocks, onset_counts, switches_off):
    """Switch trigger ``k`` at time ``t`` (on if off, off if on); returns the new ``on``.

    ``switches_off`` is None when no trigger of the scenario ever switches off (numba then
    compiles this branch alone): an onset adds its time on to the horizon to ``onset_counts``
    (time on, its square, the horizon, quanta per unit) at once, and the trajectory's end
    only counts the triggers on. Otherwise the ``clocks`` keep the trajectory's time on:
    ``on_time[k]`` as a net sum, minus each time it switched on plus each time it switched
    off (one on interval gives its length exactly; a trajectory's start resets nothing), and
    ``came_on[k]`` the last trajectory in which it switched on (``_flip`` marks a switch
    either way: both mean it was on in that trajectory); the end adds the horizon for those
    still on, and counts as fired those marked or on from the start. Both give the same
    counts (the sums of squared time on to rounding: they add in another order)."""
    bit = _ONE << k
    ku = np.uint64(k)
    if switches_off is None:
        time_on, time_on_sq, horizon, per_quantum = onset_counts
        rest = horizon - t
        time_on[ku] += np.int64(rest * per_quantum + 0.5)
        time_on_sq[ku] += rest * rest
        return on | bit
    on_time, came_on = clocks
    if on & bit:
        on_time[ku] += t
        return on & ~bit
    on_time[ku] -= t
    came_on[ku] = trajectory
    return on | bit


@njit(inline="always", **_JIT)
def _flip(k, t, on, trajectory, clocks, onset_counts, switches_off):
    """``_toggle`` without a branch on the trigger's state, for the races: which way a
    trigger switches there is as random as the triggers (a branch cost the 8-trigger
    generated chain 5% of its speed). A switch either way marks the trigger as on in this
    trajectory (it was on before, or is now)."""
    if switches_off is None:
        return _toggle(k, t, on, trajectory, clocks, onset_counts, switches_off)
    ku = np.uint64(k)
    on_time, came_on = clocks
    on_time[ku] += t if (on >> k) & 1 else -t
    came_on[ku] = trajectory
    return on ^ (_ONE << k)


@njit(inline="always", **_JIT)
def _effects(j, t, on, trajectory, clocks, onset_counts, switches_off, effects, r0, r1, r2, r3):
    """Apply the effects of transition ``j`` as it fires at ``t``, in order: off (value < 0),
    on (1), or on with probability p if off (one uniform draw). ``effects`` holds the
    scenario's ``effect_start``, ``effect_trigger`` and ``effect_value``, not the whole model:
    with the model, a profile of a variant of the kernel found numba counting references to
    all of its arrays at each call (3x slower). Returns (on, state)."""
    effect_start, effect_trigger, effect_value = effects
    for e in range(effect_start[np.uint64(j)], effect_start[np.uint64(j + 1)]):
        k = effect_trigger[np.uint64(e)]
        value = effect_value[np.uint64(e)]
        is_on = (on >> k) & 1
        if value < 0.0:
            if is_on:
                on = _toggle(k, t, on, trajectory, clocks, onset_counts, switches_off)
        elif not is_on and value > 0.0:
            switch = value >= 1.0
            if not switch:
                u, r0, r1, r2, r3 = _next(r0, r1, r2, r3)
                switch = u < value
            if switch:
                on = _toggle(k, t, on, trajectory, clocks, onset_counts, switches_off)
    return on, r0, r1, r2, r3


@njit(**_JIT)
def _record_path(h, length, seq, keys, counts, lengths, paths, other, room):
    """Count a path in an open-addressing table keyed by its hash, probing to the first empty
    slot. A new path takes that slot (and keeps its stages) while ``room``, else it counts in
    ``other``: the kernel keeps the table at most 3/4 full, so probes stay short even when a
    scenario has far more distinct paths than the table holds. Returns True for a new slot.

    The kernel counts a path found at its home slot itself and calls this for the rest: kept
    out of line, it keeps the hot loop small."""
    kept = paths.shape[1]
    mask = keys.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        if counts[slot] == 0:
            if not room:
                other[0] += 1
                return False
            keys[slot] = h
            counts[slot] = 1
            lengths[slot] = length
            for i in range(min(length, kept)):
                paths[slot, i] = seq[i]
            return True
        if keys[slot] == h:
            counts[slot] += 1
            return False
        slot = (slot + 1) & mask


@njit(inline="always", **_JIT)
def _stay(s, duration, stay, time_in, time_in_sq, per_quantum):
    """Add one stay in stage ``s`` to the sums of time in stage, as the change in the
    trajectory's whole time in the stage: a later stay adds (old + d)^2 - old^2 to the
    squares, and round(old + d) - round(old) quanta to the sum, which over a trajectory is
    its total rounded once (rounding each stay would let many short fixed stays drift)."""
    before = stay[s]
    after = before + duration
    stay[s] = after
    time_in[s] += np.int64(after * per_quantum + 0.5) - np.int64(before * per_quantum + 0.5)
    time_in_sq[s] += after * after - before * before


@njit(**_JIT)
def _run_chunk(b, size, state, model, tables, guide, acc, switches_off):
    """Run ``size`` trajectories and add their counts to the accumulators (docs/semantics.md).

    The chunk is ``b``: it writes row ``b`` of every accumulator of ``acc`` (an
    ``escalate.engine.simulate.Accumulators``) and reads the scenario from ``model`` (a
    ``KernelModel``) and the race ``tables`` of ``_hazard_tables``, with their ``guide`` (see
    ``_guide_tables``; None: races choose by a scan, the faster way for short races: numba
    then compiles no guide code, which, even unused, cost the generated chains whose races
    have at most 6 events 1-7% of their speed). A trajectory with more than
    ``MAX_EVENTS`` events before the horizon (a cycle far too fast for the horizon) stops the
    chunk and sets ``stalled[0]``: the caller reports it. ``switches_off``: see ``_toggle``.
    """
    # this chunk's rows start from zero, here, on its own thread: a caller may hand the same
    # buffers to every batch (no fresh pages to fault in, no serial memset)
    for rows in literal_unroll(acc):
        rows[b] = 0
    start_cdf, terminal, out_start = model.start_cdf, model.terminal, model.out_start
    target, kind, p1, p2 = model.target, model.kind, model.p1, model.p2
    ratio, requires, initial = model.ratio, model.requires, model.initial
    onset_rate, onset_at = model.onset_rate, model.onset_at
    onset_ratio, offset_ratio = model.onset_ratio, model.offset_ratio
    offset_rate = model.offset_rate
    effect_start = model.effect_start
    effects = (effect_start, model.effect_trigger, model.effect_value)
    horizon, step, n_grid = model.horizon, model.step, model.n_grid
    per_step = 1.0 / step if math.frexp(step)[0] == 0.5 else 0.0  # exact for powers of two
    memoryless, count, cumulative, event, mean_wait = tables
    reach_hist, quantile_hist = acc.reach_hist[b], acc.quantile_hist[b]
    entry_sum, entry_sq = acc.entry_sum[b], acc.entry_sq[b]
    occupancy_diff, at_horizon = acc.occupancy_diff[b], acc.at_horizon[b]
    time_in, time_in_sq, fired = acc.time_in[b], acc.time_in_sq[b], acc.fired[b]
    on_at_horizon, time_on, time_on_sq = acc.on_at_horizon[b], acc.time_on[b], acc.time_on_sq[b]
    path_keys, path_counts = acc.path_keys[b], acc.path_counts[b]
    path_lengths, path_stages = acc.path_lengths[b], acc.path_stages[b]
    path_other, stalled = acc.path_other[b], acc.stalled[b]
    n_stages = terminal.shape[0]
    n_triggers = initial.shape[0]
    max_out = 1
    for s in range(n_stages):
        max_out = max(max_out, out_start[s + 1] - out_start[s])
    remaining = np.empty(max_out)
    speed = np.empty(max_out)
    # Stages whose every way out is exponential race by hazards (Gillespie): one exponential
    # and one uniform per event, however many transitions and onsets compete; the latent-clock
    # loop below serves the others. Both give the same law (memoryless clocks).
    tabled = count.shape[1] > 0
    timed = False  # any `at` trigger still to come after t = 0
    for k in range(n_triggers):
        if 0.0 < onset_at[k] < np.inf:
            timed = True
    next_on = np.empty(n_triggers)  # latent-clock stages: when each trigger next switches
    switch_rate = np.zeros(n_triggers)  # ... and the hazard that time was drawn with
    on_time = np.zeros(n_triggers)  # per trajectory: each trigger's time on (see _toggle)
    came_on = np.full(n_triggers, -1, dtype=np.int64)  # the last trajectory it came on in
    clocks = (on_time, came_on)
    # at t = 0: the triggers on for certain (an `at` at or before 0), and those drawn, in order
    sure_on = np.int64(0)
    drawn = np.empty(n_triggers, dtype=np.int64)
    n_drawn = 0
    for k in range(n_triggers):
        if onset_at[k] <= 0.0:
            sure_on |= _ONE << k
        elif initial[k] > 0.0 or model.trajectory_streams:
            # own streams: one draw per trigger whatever its chance, so that a variant that
            # sets a chance to 0 keeps the rest of each trajectory on the same numbers
            drawn[n_drawn] = k
            n_drawn += 1
    # no trigger switching off: the trajectories in which each was on from t = 0 (each is on
    # for the whole horizon, counted once the chunk ends)
    on_from_start = np.zeros(n_triggers, dtype=np.int64)
    # per stage: the last trajectory that entered it (so nothing is reset between
    # trajectories) and that trajectory's time in it so far
    entered_by = np.full(n_stages, -1, dtype=np.int64)
    stay = np.zeros(n_stages)
    # sizes come from the arrays, not from constants of another module: numba's disk cache
    # would keep a stale constant if compile.py changed, and write out of bounds
    path_length = path_stages.shape[1]
    path_mask = np.uint64(path_keys.shape[0] - 1)
    path_room = path_keys.shape[0] * 3 // 4  # distinct paths the table takes (see _record_path)
    paths_kept = 0
    bins = quantile_hist.shape[1] - 1
    seq = np.empty(path_length, dtype=np.int16)
    # reciprocals: a multiplication costs a fraction of a division in the loop below
    per_quantum = 2.0**model.time_bits / horizon
    per_bin = bins / horizon
    onset_counts = (time_on, time_on_sq, horizon, per_quantum)

    r0, r1, r2, r3 = state[0], state[1], state[2], state[3]  # the generator, in registers
    # The exponential of the next hazard race is drawn one race ahead: its logarithm then
    # runs while the current event is being recorded, instead of holding up the branch on
    # t_next. Every race still gets a fresh, independent Exp(1).
    pending, r0, r1, r2, r3 = _next_exponential(r0, r1, r2, r3)
    # the race tables as one row per (stage, triggers on), row = s * masks + on: one index
    # computation an event instead of one per lookup
    masks = count.shape[1]
    rows = n_stages * masks
    race_count = count.reshape(rows)
    race_wait = mean_wait.reshape(rows)
    race_cumulative = cumulative.reshape(rows, cumulative.shape[2])
    race_next = event.reshape(rows, event.shape[2])
    if guide is not None:
        race_guide = guide.reshape(rows, guide.shape[2])
        guide_bins = float(guide.shape[2])  # a power of two: u * guide_bins is exact
    sure_start = -1  # the start stage when there is one for certain: no draw needed
    for s in range(n_stages):
        if start_cdf[s] - (start_cdf[s - 1] if s > 0 else 0.0) >= 1.0:
            sure_start = s
    if sure_start >= 0:  # every trajectory's first entry at t = 0, counted once for all
        reach_hist[sure_start, 0] += size
        quantile_hist[sure_start, 0] += size
    own_streams = model.trajectory_streams
    first_state = state.copy()
    for trajectory in range(size):
        if own_streams:  # paired runs: a trajectory's draws do not depend on the others'
            r0, r1, r2, r3 = _trajectory_state(first_state, trajectory, 0)
            pending, r0, r1, r2, r3 = _next_exponential(r0, r1, r2, r3)
        # t = 0: the start stage, and the triggers already on
        s = sure_start
        if s >= 0:
            entered_by[s] = trajectory  # its first entry is counted above
            stay[s] = 0.0
        else:
            u, r0, r1, r2, r3 = _next(r0, r1, r2, r3)
            s = 0
            while s < n_stages - 1 and u >= start_cdf[s]:
                s += 1
        # the triggers on at t = 0: those sure to be, and one draw for each that may be
        on = sure_on
        for i in range(n_drawn):
            k = drawn[i]
            u, r0, r1, r2, r3 = _next(r0, r1, r2, r3)
            on |= np.int64(u < initial[k]) << k
        started = on  # their on_time starts at 0, as the last trajectory's end left it
        t = 0.0
        g_enter = 0  # grid index of t: computed once per transition, at the exit
        h = _FNV_OFFSET
        length = 0

        events = 0  # passes of the event loops: transitions, onsets and `at` switches
        while True:  # one pass per stage entered
            # unsigned indices: numba then adds no code for negative ones
            su = np.uint64(s)
            if entered_by[su] != trajectory:  # a first entry
                entered_by[su] = trajectory
                stay[su] = 0.0
                reach_hist[su, np.uint64(g_enter)] += 1
                # bin 0 holds the entries at exactly t = 0 (start stages)
                quantile_hist[su, np.uint64(min(int(t * per_bin), bins - 1) + (t > 0.0))] += 1
                entry_sum[su] += np.int64(t * per_quantum + 0.5)
                entry_sq[su] += t * t
            h = (h ^ (su + _U_ONE)) * _FNV_PRIME
            if length < path_length:
                seq[np.uint64(length)] = s
            length += 1
            entered = t
            if own_streams and length > 1:
                # a fresh generator at each stage entry, from the trajectory and how many
                # stages it has entered: variants whose triggers switched a different number
                # of times inside a stage fall back onto the same numbers at the next one
                r0, r1, r2, r3 = _trajectory_state(first_state, trajectory, length)
                pending, r0, r1, r2, r3 = _next_exponential(r0, r1, r2, r3)
            if terminal[su]:
                _stay(su, horizon - t, stay, time_in, time_in_sq, per_quantum)
                occupancy_diff[su, np.uint64(g_enter)] += 1
                at_horizon[su] += 1
                break

            first, last = out_start[s], out_start[s + 1]
            if memoryless[su] and tabled:
                fire = -1
                while True:  # one pass per event inside the stage
                    events += 1
                    if events > MAX_EVENTS:
                        stalled[0] = 1
                        state[0], state[1], state[2], state[3] = r0, r1, r2, r3
                        return
                    row = np.uint64(s * masks + on)
                    n_events = race_count[row]
                    t_next = np.inf
                    if n_events > 0:
                        t_next = t + pending * race_wait[row]
                        pending, r0, r1, r2, r3 = _next_exponential(r0, r1, r2, r3)
                    if timed:
                        t_at, at_k = np.inf, -1
                        for k in range(n_triggers):
                            if not (on >> k) & 1 and t <= onset_at[k] < t_at:
                                t_at, at_k = onset_at[k], k  # equal: a simultaneous `at`
                        if t_at <= t_next and t_at <= horizon:  # an `at` trigger comes first
                            t = t_at
                            on = _toggle(
                                at_k, t, on, trajectory, clocks, onset_counts, switches_off
                            )
                            continue
                    if t_next > horizon:
                        break
                    t = t_next
                    if guide is None:
                        i = 0
                        if n_events > 1:  # a single possible event needs no draw to choose it
                            u, r0, r1, r2, r3 = _next(r0, r1, r2, r3)
                            pick = u * race_cumulative[row, np.uint64(n_events - 1)]
                            for m in range(n_events - 1):  # no early exit: fewer mispredictions
                                i += pick >= race_cumulative[row, np.uint64(m)]
                        chosen = race_next[row, np.uint64(i)]
                    elif n_events > 1:
                        u, r0, r1, r2, r3 = _next(r0, r1, r2, r3)
                        pick = u * race_cumulative[row, np.uint64(n_events - 1)]
                        entry = race_guide[row, np.uint64(np.int64(u * guide_bins))]
                        i = entry & _GUIDE_START
                        chosen = entry >> _GUIDE_SHIFT
                        if i < n_events - 1 and pick >= race_cumulative[row, np.uint64(i)]:
                            i += 1  # the pick lies beyond the guide's start: step on
                            while i < n_events - 1 and pick >= race_cumulative[row, np.uint64(i)]:
                                i += 1
                            chosen = race_next[row, np.uint64(i)]
                    else:
                        chosen = race_next[row, np.uint64(0)]
                    if chosen < 0:  # a trigger switches (on, or off)
                        on = _flip(
                            -chosen - 1, t, on, trajectory, clocks, onset_counts, switches_off
                        )
                        continue
                    fire = chosen  # the next stage, or n_stages + a transition with effects
                    break
                if fire < 0:  # the horizon came first
                    _stay(su, horizon - entered, stay, time_in, time_in_sq, per_quantum)
                    occupancy_diff[su, np.uint64(g_enter)] += 1
                    at_horizon[su] += 1
                    break
                _stay(su, t - entered, stay, time_in, time_in_sq, per_quantum)
                occupancy_diff[su, np.uint64(g_enter)] += 1
                g_enter = _grid_index(t, step, per_step, n_grid)
                occupancy_diff[su, np.uint64(g_enter)] -= 1
                s = fire
                if fire >= n_stages:
                    fire -= n_stages
                    on, r0, r1, r2, r3 = _effects(
                        fire,
                        t,
                        on,
                        trajectory,
                        clocks,
                        onset_counts,
                        switches_off,
                        effects,
                        r0,
                        r1,
                        r2,
                        r3,
                    )
                    s = target[np.uint64(fire)]
                continue

            state[0], state[1], state[2], state[3] = r0, r1, r2, r3
            for j in range(first, last):
                remaining[j - first] = _latent(state, kind[j], p1[j], p2[j])
            for k in range(n_triggers):
                next_on[k] = np.inf
                hazard = _switch_hazard(
                    k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio
                )
                switch_rate[k] = hazard
                if hazard > 0.0:
                    next_on[k] = t + _exponential(state) / hazard
            r0, r1, r2, r3 = state[0], state[1], state[2], state[3]

            moved = False
            while True:  # one pass per event inside the stage
                events += 1
                if events > MAX_EVENTS:
                    stalled[0] = 1
                    state[0], state[1], state[2], state[3] = r0, r1, r2, r3
                    return
                t_fire, fire = np.inf, -1
                for j in range(first, last):
                    sp = _speed(j, on, requires, ratio)
                    speed[j - first] = sp
                    if sp > 0.0:
                        when = t + remaining[j - first] / sp
                        if when < t_fire:
                            t_fire, fire = when, j
                t_trigger, switch = np.inf, -1
                for k in range(n_triggers):
                    if next_on[k] < t_trigger:
                        t_trigger, switch = next_on[k], k
                    # an `at` still to come for a trigger that is off
                    if timed and t <= onset_at[k] < t_trigger and not (on >> k) & 1:
                        t_trigger, switch = onset_at[k], k
                t_next = min(t_fire, t_trigger)
                if t_next > horizon:
                    break
                dt = t_next - t
                for j in range(first, last):
                    if speed[j - first] > 0.0:
                        remaining[j - first] -= speed[j - first] * dt
                t = t_next
                if t_trigger <= t_fire:  # a trigger switches (first, on a tie)
                    on = _toggle(switch, t, on, trajectory, clocks, onset_counts, switches_off)
                    # the new set changes the hazards of the trigger switches: redraw the
                    # switched trigger's clock, rescale the others' (memoryless)
                    state[0], state[1], state[2], state[3] = r0, r1, r2, r3
                    for k in range(n_triggers):
                        hazard = _switch_hazard(
                            k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio
                        )
                        if k == switch or switch_rate[k] == 0.0:
                            next_on[k] = np.inf
                            if hazard > 0.0:
                                next_on[k] = t + _exponential(state) / hazard
                        elif hazard != switch_rate[k]:
                            next_on[k] = t + (next_on[k] - t) * (switch_rate[k] / hazard)
                        switch_rate[k] = hazard
                    r0, r1, r2, r3 = state[0], state[1], state[2], state[3]
                    continue
                _stay(su, t - entered, stay, time_in, time_in_sq, per_quantum)
                occupancy_diff[su, np.uint64(g_enter)] += 1
                g_enter = _grid_index(t, step, per_step, n_grid)
                occupancy_diff[su, np.uint64(g_enter)] -= 1
                if effect_start[fire + 1] > effect_start[fire]:
                    on, r0, r1, r2, r3 = _effects(
                        fire,
                        t,
                        on,
                        trajectory,
                        clocks,
                        onset_counts,
                        switches_off,
                        effects,
                        r0,
                        r1,
                        r2,
                        r3,
                    )
                s = target[np.uint64(fire)]
                moved = True
                break
            if not moved:  # the horizon came first
                _stay(su, horizon - entered, stay, time_in, time_in_sq, per_quantum)
                occupancy_diff[su, np.uint64(g_enter)] += 1
                at_horizon[su] += 1
                break

        if switches_off is None:  # on once, on to the end: the onset counted its time on
            for k in range(n_triggers):
                fired[k] += (on >> k) & 1
                on_from_start[k] += (started >> k) & 1
        else:
            # without a branch per trigger (their outcomes are as random as the triggers):
            # a trigger that was never on has no time on (its on_time was zeroed when last
            # counted), so it adds zeros; one on at some time was on at the start or switched
            for k in range(n_triggers):
                ku = np.uint64(k)
                is_on = (on >> k) & 1  # on to the horizon (or kept in a terminal stage)
                total_on = on_time[ku] + horizon * is_on  # the net sum's last interval
                fired[ku] += (came_on[ku] == trajectory) | ((started >> k) & 1)
                on_at_horizon[ku] += is_on
                time_on[ku] += np.int64(total_on * per_quantum + 0.5)
                time_on_sq[ku] += total_on * total_on
                on_time[ku] = 0.0
        home = h & path_mask
        if path_keys[home] == h and path_counts[home] > 0:
            path_counts[home] += 1
        elif _record_path(
            h,
            length,
            seq,
            path_keys,
            path_counts,
            path_lengths,
            path_stages,
            path_other,
            paths_kept < path_room,
        ):
            paths_kept += 1
    if switches_off is None:
        whole = np.int64(horizon * per_quantum + 0.5)
        for k in range(n_triggers):
            time_on[k] += on_from_start[k] * whole
            time_on_sq[k] += on_from_start[k] * (horizon * horizon)
            on_at_horizon[k] = fired[k]  # every trigger that came on is on at the horizon
    state[0], state[1], state[2], state[3] = r0, r1, r2, r3


@njit(parallel=True, **_JIT)
def run_batch(sizes, states, model, acc, switches_off, guided):
    """Run one batch of chunks in parallel: chunk ``b`` runs ``sizes[b]`` trajectories from
    generator ``states[b]`` (advanced in place) and writes only row ``b`` of each array of
    ``acc``. ``model`` and ``acc`` are the named tuples of ``escalate.engine.simulate``;
    ``switches_off`` is None when no trigger ever switches off (a kernel without the
    bookkeeping of triggers going off: see ``_toggle``), else True; ``guided`` is True when
    races choose their event by guide tables (see ``_guide_tables``), else None. Both give
    the same counts.

    numba splits the chunks among the threads in contiguous ranges, the first ranges one
    chunk longer when they do not divide evenly. A run's last chunk is often short: it runs
    first, in a longer range (7 chunks on 2 threads: 3 whole and the short one against 3
    whole, not 4 against 2 and the short one). The order never changes a count: chunk ``b``
    draws from its own stream into its own row."""
    tables = _hazard_tables(model)
    n_chunks = sizes.shape[0]
    short_last = n_chunks > 1 and sizes[n_chunks - 1] < sizes[0]
    shift = n_chunks - 1 if short_last else 0
    if guided is None:
        for i in prange(n_chunks):
            b = (i + shift) % n_chunks
            _run_chunk(b, sizes[b], states[b], model, tables, None, acc, switches_off)
    else:
        _, count, cumulative, event, _ = tables
        guide = _guide_tables(count, cumulative, event)
        for i in prange(n_chunks):
            b = (i + shift) % n_chunks
            _run_chunk(b, sizes[b], states[b], model, tables, guide, acc, switches_off)
