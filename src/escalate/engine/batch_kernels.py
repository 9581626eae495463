"""Numba kernels of the worlds engine: many parameter sets of one memoryless scenario solved
at the horizon in one call, a world per iteration of a parallel loop.

A world's row of parameter values becomes its compiled numbers by the scenario's rate map
(each number a constant, a parameter, its reciprocal or ``-log1p(-p) / t``, the operations
``resolve`` performs, in its order), its numbers become the generator's entries as
``Chain.with_rates`` computes them, and each chain it needs (the chain itself for occupancy, a
copy absorbing in a stage for first entry, in a trigger's states for ``p_fired``) is advanced
to the horizon by the uniformization series of ``uniformize``. Every world is computed whole on
one thread, so the figures do not depend on the number of threads. The arrays travel in one
``BatchSpec`` (see ``engine.batches``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from escalate.engine.uniformize import uniformized_piece

# the operations of the rate map (``engine.batches`` writes the same codes)
OP_CONST, OP_PARAM, OP_RECIPROCAL, OP_CHANCE = 0, 1, 2, 3
# what a world's number must keep from the template's for the chain's structure to hold
KEEP_POSITIVE, KEEP_SIGN_AND_ONE = 0, 1
# the chains a world advances
JOB_OCCUPANCY, JOB_REACH, JOB_FIRED = 0, 1, 2
# a world the batch leaves: its structure differs, or a number is not finite or out of range
SOLVED, OTHER_STRUCTURE, TOO_FAST = 0, 1, 2
MAX_TERMS = 1200  # a series of at most MAX_MEAN + 14 sqrt(MAX_MEAN) terms
MAX_MEAN = 600.0  # a step is cut so that lam h <= 600 (e^-600 is far from underflow)


@njit(cache=True, nogil=True)
def _operand(x, index, value):
    return x[index] if index >= 0 else value


@njit(cache=True, nogil=True)
def rate_numbers(x, op, a_index, a_value, b_index, b_value, out):
    """The compiled numbers of one world (parameter values ``x``) by the rate map."""
    for i in range(op.shape[0]):
        a = _operand(x, a_index[i], a_value[i])
        if op[i] == OP_CONST:
            out[i] = a_value[i]
        elif op[i] == OP_PARAM:
            out[i] = a
        elif op[i] == OP_RECIPROCAL:
            out[i] = 1.0 / a
        else:
            out[i] = -math.log1p(-a) / _operand(x, b_index[i], b_value[i])


@njit(cache=True, nogil=True)
def _pattern(value, keep):
    code = 1 if value > 0.0 else 0
    if keep == KEEP_SIGN_AND_ONE:
        code += (2 if value >= 1.0 else 0) + (4 if value < 0.0 else 0)
    return code


@njit(cache=True, nogil=True)
def entry_rates(spec, numbers, rates):
    """The generator's entries of one world from its compiled numbers, as ``with_rates``."""
    n_k, n_s = spec.n_triggers, spec.n_stages
    p1, ratio = spec.p1_at, spec.ratio_at
    for e in range(spec.entry_kind.shape[0]):
        mask = spec.entry_mask[e]
        if spec.entry_kind[e] == 0:
            j = spec.entry_which[e]
            product = 1.0
            for k in range(n_k):
                product *= numbers[ratio + j * n_k + k] if (mask >> k) & 1 else 1.0
            rate = numbers[p1 + j] * product
            if spec.has_effects:
                factor = 1.0
                for f in range(spec.factor_start[e], spec.factor_start[e + 1]):
                    value = numbers[spec.effect_at + spec.factor_effect[f]]
                    factor *= value if spec.factor_on[f] else 1.0 - value
                rate *= factor
        else:
            k, s = spec.entry_which[e], spec.entry_stage[e]
            on = (mask >> k) & 1
            base_at = spec.offset_rate_at if on else spec.onset_rate_at
            table_at = spec.offset_ratio_at if on else spec.onset_ratio_at
            product = 1.0
            for m in range(n_k):
                product *= numbers[table_at + (k * n_s + s) * n_k + m] if (mask >> m) & 1 else 1.0
            rate = numbers[base_at + k * n_s + s] * product
        rates[e] = rate


@njit(cache=True, nogil=True)
def _step(spec, data, v, lam, h, area):
    """``v`` advanced by ``h`` (its integral added to ``area``), as ``Uniformized.step``."""
    if h <= 0.0:
        return v
    if lam == 0.0:
        area += v * h
        return v
    pieces = max(1, math.ceil(lam * h / MAX_MEAN))
    for _ in range(pieces):
        v, part = uniformized_piece(
            spec.qt_indptr, spec.qt_indices, data, v, lam, lam * (h / pieces), MAX_TERMS
        )
        area += part
    return v


@njit(cache=True, nogil=True)
def _absorbed(spec, job, state):
    if spec.job_kind[job] == JOB_REACH:
        return spec.stage_of[state] == spec.job_target[job]
    if spec.job_kind[job] == JOB_FIRED:
        return (spec.mask_of[state] >> spec.job_target[job]) & 1 == 1
    return False


@njit(cache=True, nogil=True)
def _generator(spec, x, q, p0):
    """One world's generator (``q``: the data of the template's pattern) and start
    distribution ``p0`` from its parameter values ``x``; returns whether it has the template's
    structure (else ``OTHER_STRUCTURE``: a number not finite, out of its range, or zero where
    the template's is not)."""
    n, n_k = spec.n_states, spec.n_triggers
    numbers = np.empty(spec.op.shape[0])
    rate_numbers(x, spec.op, spec.a_index, spec.a_value, spec.b_index, spec.b_value, numbers)
    for i in range(numbers.shape[0]):
        value = numbers[i]
        if not math.isfinite(value) or _pattern(value, spec.keep[i]) != spec.code[i]:
            return OTHER_STRUCTURE
        # outside its range (a chance above 1): the per-world engine says so
        if spec.keep[i] == KEEP_POSITIVE:
            if value < 0.0:
                return OTHER_STRUCTURE
        elif value > 1.0 or (value < 0.0 and value != -1.0):
            return OTHER_STRUCTURE
    rates = np.empty(spec.entry_kind.shape[0])
    entry_rates(spec, numbers, rates)
    q[:] = 0.0
    out = np.zeros(n)
    for e in range(rates.shape[0]):
        q[spec.entry_slot[e]] += rates[e]
        out[spec.entry_row[e]] += rates[e]
    for i in range(n):
        q[spec.diagonal_slot[i]] += -out[i]
    p0[:] = 0.0
    for i in range(n):
        s, mask = spec.stage_of[i], spec.mask_of[i]
        if spec.start[s] > 0.0:
            p = 1.0
            for k in range(n_k):
                chance = 1.0 if spec.always_on[k] else numbers[spec.initial_at + k]
                if (mask >> k) & 1:
                    p = p * chance if chance > 0.0 else 0.0
                else:
                    p = p * (1.0 - chance) if chance < 1.0 else 0.0
            p0[i] = spec.start[s] * p
    return SOLVED


@njit(cache=True, parallel=True)
def generators(spec, x, q, p0, status):
    """Every world's generator and start (rows of ``q`` and ``p0``), for the forward
    algorithm of a nowcast; ``status[w]`` says whether world ``w`` has the template's
    structure."""
    for w in prange(x.shape[0]):
        status[w] = _generator(spec, x[w], q[w], p0[w])


@njit(cache=True, nogil=True)
def _world(spec, x, start, figures):
    """Solve one world: its figures into ``figures``; returns whether it could. ``start``: its
    distribution at ``spec.t_start`` (empty: the scenario's start, from its numbers)."""
    n, n_k = spec.n_states, spec.n_triggers
    q, p0 = np.empty(spec.q_size), np.empty(n)
    if _generator(spec, x, q, p0) != SOLVED:
        return OTHER_STRUCTURE
    fastest = 0.0
    for i in range(n):
        fastest = max(fastest, -q[spec.diagonal_slot[i]])
    if not fastest * (spec.horizon - spec.t_start) <= spec.max_jumps:
        return TOO_FAST
    if start.shape[0] == n:
        p0[:] = start
    for k in range(n_k):  # on at the start (of the span)
        on = 0.0
        for i in range(n):
            if (spec.mask_of[i] >> k) & 1:
                on += p0[i]
        figures[4 * spec.n_stages + 3 * n_k + k] = on
    for s in range(spec.n_stages):
        if spec.reach_at_start[s]:  # every trajectory starts there: reached at 0
            reached = 0.0
            for i in range(n):
                if spec.stage_of[i] == s:
                    reached += p0[i]
            figures[s] = min(max(reached, 0.0), 1.0)
            figures[3 * spec.n_stages + s] = 0.0
    data = np.empty(spec.qt_indices.shape[0])
    for job in range(spec.job_kind.shape[0]):
        lam = 0.0
        for p in range(data.shape[0]):
            position = spec.qt_position[p]
            kept = not _absorbed(spec, job, spec.q_row[position])
            data[p] = q[position] if kept else 0.0
        for i in range(n):
            if not _absorbed(spec, job, i):
                lam = max(lam, -q[spec.diagonal_slot[i]])
        v, area, t0 = p0.copy(), np.zeros(n), spec.t_start
        for jump in range(spec.jump_times.shape[0]):
            tau = spec.jump_times[jump]
            if tau <= spec.t_start:
                continue
            v = _step(spec, data, v, lam, tau - t0, area)
            moved = np.zeros(n)
            for i in range(n):
                moved[spec.jump_moved[jump, i]] += v[i]
            v, t0 = moved, tau
        v = _step(spec, data, v, lam, spec.horizon - t0, area)
        _figures(spec, job, v, area, figures)
    return SOLVED


@njit(cache=True, nogil=True)
def _figures(spec, job, v, area, figures):
    """A job's figures (rows of ``figures``: p_reached, p_at_horizon, time_in, mean time to
    reach per stage, then p_fired, p_on_at_horizon, time_on and on at the start per trigger;
    times count from ``spec.t_start``)."""
    n_s, n_k, horizon = spec.n_stages, spec.n_triggers, spec.horizon - spec.t_start
    kind, target = spec.job_kind[job], spec.job_target[job]
    if kind == JOB_OCCUPANCY:
        for s in range(n_s):
            figures[n_s + s], figures[2 * n_s + s] = 0.0, 0.0
        for k in range(n_k):
            figures[4 * n_s + n_k + k], figures[4 * n_s + 2 * n_k + k] = 0.0, 0.0
        for i in range(v.shape[0]):
            s, mask = spec.stage_of[i], spec.mask_of[i]
            figures[n_s + s] += v[i]
            figures[2 * n_s + s] += area[i]
            for k in range(n_k):
                if (mask >> k) & 1:
                    figures[4 * n_s + n_k + k] += v[i]
                    figures[4 * n_s + 2 * n_k + k] += area[i]
        for s in range(n_s):
            figures[n_s + s] = min(max(figures[n_s + s], 0.0), 1.0)
        for k in range(n_k):
            on = min(max(figures[4 * n_s + n_k + k], 0.0), 1.0)
            figures[4 * n_s + n_k + k] = on
            if not spec.switches_off[k]:
                figures[4 * n_s + k] = on
        for s in range(n_s):
            if spec.reach_in_occupancy[s]:  # a terminal stage absorbs in the chain itself
                _reach(s, figures[n_s + s], figures[2 * n_s + s], horizon, n_s, figures)
        return
    reached, inside = 0.0, 0.0
    for i in range(v.shape[0]):
        if _absorbed(spec, job, i):
            reached += v[i]
            inside += area[i]
    reached = min(max(reached, 0.0), 1.0)
    if kind == JOB_FIRED:
        figures[4 * n_s + target] = reached
        return
    _reach(target, reached, inside, horizon, n_s, figures)


@njit(cache=True, nogil=True)
def _reach(s, reached, inside, horizon, n_s, figures):
    """P(stage ``s`` reached) and the mean time to reach it, from the mass absorbed there
    and its time inside (as ``solve_at_horizon``)."""
    figures[s] = reached
    if reached > 0.0:
        mean = horizon - inside / reached
        figures[3 * n_s + s] = 0.0 if mean < 1e-9 * horizon else mean


@njit(cache=True, parallel=True)
def solve_worlds(spec, x, starts, figures, status):
    """Solve every world of ``x`` (worlds x parameters) at the horizon: row ``w`` of
    ``figures`` (nan where a figure was not asked) and ``status[w]``. ``starts``: each world's
    distribution at ``spec.t_start`` (no rows: the scenario's start)."""
    for w in prange(x.shape[0]):
        start = starts[w] if starts.shape[0] else starts[0:0].ravel()
        status[w] = _world(spec, x[w], start, figures[w])
