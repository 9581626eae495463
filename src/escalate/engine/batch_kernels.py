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
def _world(spec, x, start, times, figures):
    """Solve one world: its figures at each of ``times`` (sorted, from ``spec.t_start`` to the
    horizon) into the rows of ``figures``; returns whether it could. ``start``: its
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
        figures[:, 4 * spec.n_stages + 3 * n_k + k] = on
    for s in range(spec.n_stages):
        if spec.reach_at_start[s]:  # every trajectory starts there: reached at 0
            reached = 0.0
            for i in range(n):
                if spec.stage_of[i] == s:
                    reached += p0[i]
            figures[:, s] = min(max(reached, 0.0), 1.0)
            figures[:, 3 * spec.n_stages + s] = 0.0
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
        v, area, t0, jump = p0.copy(), np.zeros(n), spec.t_start, 0
        for g in range(times.shape[0]):
            while jump < spec.jump_times.shape[0] and spec.jump_times[jump] <= times[g]:
                tau = spec.jump_times[jump]
                jump += 1
                if tau <= spec.t_start:
                    continue
                v = _step(spec, data, v, lam, tau - t0, area)
                moved = np.zeros(n)
                for i in range(n):
                    moved[spec.jump_moved[jump - 1, i]] += v[i]
                v, t0 = moved, tau
            v = _step(spec, data, v, lam, times[g] - t0, area)
            t0 = times[g]
            _figures(spec, job, v, area, q, p0, times[g] - spec.t_start, figures[g])
    return SOLVED


@njit(cache=True, nogil=True)
def _figures(spec, job, v, area, q, p0, span, figures):
    """A job's figures (rows of ``figures``: p_reached, p_at_horizon, time_in, mean time to
    reach per stage, then p_fired, p_on_at_horizon, time_on and on at the start per trigger;
    times count from ``spec.t_start``; ``span``: the time since). The chain itself also gives
    ``p_reached`` of a stage entered at most once (on no cycle of stages): the mass there at
    the start plus the probability that flowed in, the time in each state outside it times
    its rate into it."""
    n_s, n_k, horizon = spec.n_stages, spec.n_triggers, span
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
            elif spec.reach_by_flow[s]:
                figures[s] = 0.0
        for i in range(v.shape[0]):
            if spec.reach_by_flow[spec.stage_of[i]]:
                figures[spec.stage_of[i]] += p0[i]
        for p in range(q.shape[0]):
            source, into = spec.stage_of[spec.q_row[p]], spec.stage_of[spec.q_col[p]]
            if source != into and spec.reach_by_flow[into]:
                figures[into] += area[spec.q_row[p]] * q[p]
        for s in range(n_s):
            if spec.reach_by_flow[s]:
                figures[s] = min(max(figures[s], 0.0), 1.0)
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
def solve_worlds(spec, x, starts, times, figures, status):
    """Solve every world of ``x`` (worlds x parameters) at each of ``times``: ``figures[w]``
    (a row per time; nan where a figure was not asked) and ``status[w]``. ``starts``: each
    world's distribution at ``spec.t_start`` (no rows: the scenario's start)."""
    for w in prange(x.shape[0]):
        start = starts[w] if starts.shape[0] else starts[0:0].ravel()
        status[w] = _world(spec, x[w], start, times, figures[w])


# the forward algorithm as a program (``forecast.forward`` writes it once per structure and
# record; every world runs it on its own generator)
FORWARD_EVOLVE, FORWARD_MASK, FORWARD_JUMP, FORWARD_ZERO, FORWARD_SWITCH, FORWARD_ENTER = range(6)
FORWARD_MOVE = 6
FORWARD_MAX_MEAN, FORWARD_MAX_TERMS = 100.0, 400  # as ``stepping.Uniformized``


@njit(cache=True, nogil=True)
def _evolve(spec, q, v, r, h):
    """``v`` (in place) after ``h`` in the chain restricted to restriction ``r``'s states,
    rescaled to sum to 1; returns the log of the mass kept (-inf: nothing survives). As
    ``stepping.Uniformized.scaled`` on the restricted generator."""
    allowed = spec.r_allowed[spec.r_allowed_start[r] : spec.r_allowed_start[r + 1]]
    if allowed.shape[0] == 0:
        return -math.inf
    first, last = spec.r_nnz_start[r], spec.r_nnz_start[r + 1]
    indptr = spec.r_indptr[spec.r_allowed_start[r] + r : spec.r_allowed_start[r + 1] + r + 1]
    indices = spec.r_indices[first:last]
    data = np.empty(last - first)
    lam = 0.0
    for p in range(first, last):
        data[p - first] = q[spec.r_taken[p]]
        if spec.r_diagonal[p]:
            lam = max(lam, -data[p - first])
    sub = np.empty(allowed.shape[0])
    for i in range(allowed.shape[0]):
        sub[i] = v[allowed[i]]
    pieces = max(1, math.ceil(lam * h / FORWARD_MAX_MEAN)) if h > 0.0 and lam > 0.0 else 0
    log_mass = 0.0
    for _ in range(pieces):
        sub, _ = uniformized_piece(indptr, indices, data, sub, lam, lam * (h / pieces),
                                   FORWARD_MAX_TERMS)  # fmt: skip
        total = sub.sum()
        if not total > 0.0:
            return -math.inf
        log_mass += math.log(total)
        sub = sub / total
    total = sub.sum()
    if not total > 0.0:
        return -math.inf
    v[:] = 0.0
    for i in range(allowed.shape[0]):
        v[allowed[i]] = sub[i] / total
    return log_mass + math.log(total)


@njit(cache=True, nogil=True)
def forward_world(spec, q, p0, out):
    """One world's forward algorithm (``q``: its generator's data in the template's pattern,
    ``p0``: its start): the log-likelihood of the record, and the filtered distribution at
    as_of into ``out`` (zero where the record is impossible, -inf)."""
    n = p0.shape[0]
    registers = np.zeros((spec.registers, n))
    registers[0] = p0
    flow = np.empty(n)
    log_l = 0.0
    for o in range(spec.ops.shape[0]):
        code, a, b, c = spec.ops[o, 0], spec.ops[o, 1], spec.ops[o, 2], spec.ops[o, 3]
        if code == FORWARD_EVOLVE:
            log_l += _evolve(spec, q, registers[0], a, spec.dts[o])
            if not math.isfinite(log_l):
                out[:] = 0.0
                return -math.inf
        elif code == FORWARD_MASK:
            for i in range(n):
                registers[0, i] *= spec.masks[a, i]
        elif code == FORWARD_JUMP:
            flow[:] = 0.0
            for i in range(n):
                flow[spec.jump_moved[a, i]] += registers[0, i]
            registers[0] = flow
        elif code == FORWARD_ZERO:
            registers[a] = 0.0
        elif code == FORWARD_SWITCH:  # the flow along trigger c's switch alone, added
            flow[:] = 0.0
            for e in range(spec.entry_rows.shape[0]):
                if spec.same_stage[e] and spec.flipped[e] == (1 << c):
                    flow[spec.entry_cols[e]] += registers[a, spec.entry_rows[e]] * q[e]
            for i in range(n):
                registers[b, i] += flow[i]
        elif code == FORWARD_ENTER:  # the flow into stage b (v Q, by Q's columns)
            for j in range(n):
                total = 0.0
                for p in range(spec.into_indptr[j], spec.into_indptr[j + 1]):
                    total += q[spec.into_position[p]] * registers[a, spec.into_indices[p]]
                flow[j] = total * (1.0 if spec.stage_of[j] == b else 0.0)
            registers[a] = flow
        else:  # FORWARD_MOVE
            registers[b] = registers[a]
    out[:] = registers[0]
    return log_l


@njit(cache=True, parallel=True)
def forward_worlds(spec, q, p0, status, log_l, distribution):
    """The forward algorithm of every world whose ``status`` is ``SOLVED`` (rows of ``q`` and
    ``p0``, from ``generators``): ``log_l[w]`` and row ``w`` of ``distribution``."""
    for w in prange(q.shape[0]):
        if status[w] == SOLVED:
            log_l[w] = forward_world(spec, q[w], p0[w], distribution[w])
