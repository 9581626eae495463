"""Numba kernels for nowcasting scenarios that are not memoryless: a particle filter per world
and the forecast from its filtered particles (docs/forecasting.md, "Particles").

Every stage entry of the record is observed, so the only hidden things are the triggers the
record does not observe (and the effects they take). A particle carries one history of those;
given it, the rest of the likelihood is explicit: each sojourn contributes the hazard of the
observed exit at its clock times the survival of every competitor at its own clock (a clock
runs at the product of the ``when`` ratios of the triggers on), and each observed trigger
switch its hazard times the survival of the hazard up to it. The particles are resampled at
each stage entry; the product of the mean weights is an unbiased estimate of the world's
likelihood. The forecast starts each particle from its filtered state at as_of (its stage,
the clocks already run, its triggers), draws each delay's remaining time given that it has not
fired yet, and runs to the horizon.

Each world draws from a generator of its own (its seed from the caller), so a world's figures
do not depend on which thread runs it, nor on the other worlds.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from escalate.engine.delays import _log_hazard, _log_survival, _tail_draw
from escalate.engine.kernels import _exponential, _latent, _speed, _switch_hazard, _uniform

__all__ = ["MAX_EVENTS", "ParticleSpec", "filter_and_forecast"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

# The timing kinds' codes, as in escalate.engine.kernels (kept here: see that module).
EXPONENTIAL, FIXED, UNIFORM, GAMMA, WEIBULL, LOGNORMAL = range(6)
_DUE = 1e-9  # as in escalate.engine.delays: a fixed delay is due within this (relative)
MAX_EVENTS = 1_000_000  # events in one sojourn or forecast trajectory before a world stalls

ParticleSpec = namedtuple(
    "ParticleSpec",
    # the structure, shared by every world
    "out_start target kind requires terminal effect_start effect_trigger "
    # per world (leading axis: the world)
    "start_cdf initial p1 p2 ratio onset_rate onset_ratio offset_rate offset_ratio onset_at "
    "effect_value "
    # the record: sojourns (stage, start, end, next stage or -1), the observed switches of
    # each sojourn (CSR; an effect's, or the places a switch at an entry's instant may take),
    # the observed triggers, those on from the start, and the time a record's date spans
    "stay_stage stay_start stay_end stay_next event_start event_time event_trigger event_on "
    "event_effect event_slots observed start_on resolution",
)


@njit(**_JIT)
def _resample(log_w, picks, state):
    """Systematic resampling: ``picks`` gets indices drawn in proportion to ``exp(log_w)``.
    Returns the log of the mean weight (-inf when every weight is 0)."""
    n = log_w.shape[0]
    top = -np.inf
    for i in range(n):
        top = max(top, log_w[i])
    if top == -np.inf:
        return -np.inf
    total = 0.0
    for i in range(n):
        total += math.exp(log_w[i] - top)
    m = picks.shape[0]
    u = _uniform(state) / m
    cumulative = math.exp(log_w[0] - top) / total
    i = 0
    for r in range(m):
        target = u + r / m
        while cumulative < target and i < n - 1:
            i += 1
            cumulative += math.exp(log_w[i] - top) / total
        picks[r] = i
    return top + math.log(total / n)


@njit(**_JIT)
def _observed_switch(w, spec, s, on, k, to_on, t, log_w):
    """An observed switch of trigger ``k`` (on if ``to_on``) at ``t`` in stage ``s``: its
    onset or offset hazard; an `at` trigger's onset comes at its time, or never. Returns
    (on, log_w); -inf where the record contradicts the particle."""
    if ((on >> k) & 1) == to_on:
        return on, -np.inf
    at = spec.onset_at[w, k]
    if at < np.inf and to_on:
        if abs(t - at) > _DUE * max(1.0, abs(t)):
            return on, -np.inf
    else:
        h = _switch_hazard(k, s, on, spec.onset_rate[w], spec.onset_ratio[w],
                           spec.offset_rate[w], spec.offset_ratio[w])  # fmt: skip
        if not h > 0.0:
            return on, -np.inf
        log_w += math.log(h)
    return on ^ (np.int64(1) << k), log_w


@njit(**_JIT)
def _in_any_order(w, spec, state, s, on, ks, to_on, n, t, log_w):
    """The ``n`` observed switches ``ks[:n]`` (on where ``to_on``) of one instant, in an order
    drawn uniformly: weighted by the number of orders, an unbiased estimate of their sum over
    every order (the exact method's). Returns (on, log_w)."""
    left = n
    while left > 0 and log_w > -np.inf:
        i = min(int(_uniform(state) * left), left - 1)
        log_w += math.log(left)
        on, log_w = _observed_switch(w, spec, s, on, ks[i], to_on[i], t, log_w)
        ks[i], to_on[i] = ks[left - 1], to_on[left - 1]
        left -= 1
    return on, log_w


@njit(**_JIT)
def _place(state, slots, log_w):
    """Whether a switch at an entry's instant comes at this place (of ``slots`` left: before
    the next entry, or after the last), drawn uniformly over the places; with its weight."""
    if slots <= 1:
        return True, log_w
    if _uniform(state) * slots < 1.0:
        return True, log_w + math.log(slots)
    return False, log_w + math.log(slots / (slots - 1.0))


@njit(**_JIT)
def _sojourn(w, v, spec, state, s, on, pending, clocks, log_w, scratch):
    """Particle's sojourn ``v`` in stage ``s`` of world ``w``: the hidden triggers switch by
    their hazards, the observed ones at their times; ``clocks`` (one per way out of ``s``)
    run; ``log_w`` gains the observed switches' hazards and their survival, and at the end
    the competitors' survival and, unless it is the last, the exit's hazard and effects.
    ``pending`` (triggers, their directions, places left) holds the switches of an entry's
    instant put after it. ``scratch``: the world's buffers for one instant's switches
    (triggers, directions) and the exit's parts. Returns (triggers on after the exit's
    effects, pending, log_w)."""
    out_start, target, kind, requires = spec.out_start, spec.target, spec.kind, spec.requires
    p1, p2, ratio = spec.p1[w], spec.p2[w], spec.ratio[w]
    onset_rate, onset_ratio = spec.onset_rate[w], spec.onset_ratio[w]
    offset_rate, offset_ratio = spec.offset_rate[w], spec.offset_ratio[w]
    onset_at, observed = spec.onset_at[w], spec.observed
    n_k = onset_at.shape[0]
    first, last = out_start[s], out_start[s + 1]
    t, end = spec.stay_start[v], spec.stay_end[v]
    e, e_end = spec.event_start[v], spec.event_start[v + 1]
    following = spec.stay_next[v]
    ks, to_on, factors = scratch
    for j in range(first, last):
        clocks[j - first] = 0.0
    # the switches of the entry's instant put after it: here, or after the next entry
    bits, directions, slots = pending
    n = 0
    kept = np.int64(0)
    for k in range(n_k):
        if (bits >> k) & 1:
            here, log_w = _place(state, slots, log_w)
            if here:
                ks[n], to_on[n] = k, (directions >> k) & 1
                n += 1
            else:
                kept |= np.int64(1) << k
    on, log_w = _in_any_order(w, spec, state, s, on, ks, to_on, n, t, log_w)
    pending = (kept, directions & kept, slots - 1)
    events = 0
    while log_w > -np.inf:
        events += 1
        if events > MAX_EVENTS:  # a cycle far too fast: the caller reports it
            return on, pending, np.nan
        t_fix, what = end, -1  # -1: the end; 0: observed switches; 1: an `at` switch
        plain = e < e_end and spec.event_slots[e] == 1 and spec.event_effect[e] == 0
        if plain and spec.event_time[e] <= t_fix:
            t_fix, what = spec.event_time[e], 0
        at_k = -1
        for k in range(n_k):  # an `at` due at an entry's instant comes after it (none once
            # ended); one due at as_of comes by then
            at = onset_at[k]
            due = not (on >> k) & 1 and t <= at and (at < t_fix or (at == end and following < 0))
            if due and not spec.terminal[s]:
                if (observed >> k) & 1:  # the record shows it off at its `at` time
                    return on, pending, -np.inf
                t_fix, what, at_k = at, 1, k
        hidden = 0.0
        seen = 0.0
        for k in range(n_k):
            h = _switch_hazard(k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio)
            if (observed >> k) & 1:
                seen += h
            else:
                hidden += h
        t_next, what_next = t_fix, what
        if hidden > 0.0:
            t_hidden = t + _exponential(state) / hidden
            if t_hidden < t_fix:
                t_next, what_next = t_hidden, 2
        dt = t_next - t
        for j in range(first, last):
            clocks[j - first] += _speed(j, on, requires, ratio) * dt
        log_w -= seen * dt
        t = t_next
        if what_next == 2:  # a hidden trigger switches: which, in proportion to its hazard
            pick = _uniform(state) * hidden
            chosen = -1
            for k in range(n_k):
                if not (observed >> k) & 1:
                    h = _switch_hazard(k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio)
                    if h > 0.0:
                        chosen = k
                        pick -= h
                        if pick < 0.0:
                            break
            on ^= np.int64(1) << chosen
        elif what_next == 1:
            on |= np.int64(1) << at_k
        elif what_next == 0:  # the observed switches of this instant, in any order
            n = 0
            while (e < e_end and spec.event_time[e] == t and spec.event_slots[e] == 1
                   and spec.event_effect[e] == 0):  # fmt: skip
                ks[n], to_on[n] = spec.event_trigger[e], spec.event_on[e]
                n += 1
                e += 1
            on, log_w = _in_any_order(w, spec, state, s, on, ks, to_on, n, t, log_w)
        else:
            break
    if log_w == -np.inf:
        return on, pending, log_w
    for j in range(first, last):
        log_w += _log_survival(kind[j], p1[j], p2[j], clocks[j - first])
    if following < 0:
        return on, pending, log_w
    # the switches of the exit's instant that are no effect of it: before it, or after
    n = 0
    slots = 1
    while e < e_end and spec.event_slots[e] > 1:
        slots = spec.event_slots[e]
        here, log_w = _place(state, slots, log_w)
        k = spec.event_trigger[e]
        if here:
            ks[n], to_on[n] = k, spec.event_on[e]
            n += 1
        else:
            kept, directions, _ = pending
            pending = (kept | (np.int64(1) << k), directions | (spec.event_on[e] << k), slots - 1)
        e += 1
    on, log_w = _in_any_order(w, spec, state, s, on, ks, to_on, n, t, log_w)
    if log_w == -np.inf:
        return on, pending, log_w
    # the exit: the hazards of the ways into the next stage, one chosen in proportion
    total = 0.0
    for j in range(first, last):
        factor = 0.0
        if target[j] == following:
            factor = _exit_factor(j, on, requires, ratio, kind, p1, p2, clocks[j - first],
                                  spec.resolution)  # fmt: skip
        factors[j - first] = factor
        total += factor
    if not total > 0.0:
        return on, pending, -np.inf
    log_w += math.log(total)
    pick = _uniform(state) * total
    chosen = -1
    for j in range(first, last):
        if factors[j - first] > 0.0:
            chosen = j
            pick -= factors[j - first]
            if pick < 0.0:
                break
    on, log_w = _exit_effects(w, chosen, spec, state, on, log_w, e, e_end)
    return on, pending, log_w


@njit(**_JIT)
def _exit_factor(j, on, requires, ratio, kind, p1, p2, clock, resolution):
    """Transition ``j``'s part in an observed exit at ``clock``: its hazard times its clock's
    speed (a density in time). A fixed delay has no density: it fires for certain when its
    clock reaches its value, so its part is 1 when it falls due within the ``resolution`` of
    the record's time (a dated record's day: the exit came that day), else 0."""
    sp = _speed(j, on, requires, ratio)
    if sp == 0.0:
        return 0.0
    if kind[j] == FIXED:
        due = p1[j] - clock
        slack = _DUE * max(1.0, p1[j])
        return 1.0 if -slack <= due < sp * resolution + slack else 0.0
    return sp * math.exp(_log_hazard(kind[j], p1[j], p2[j], clock))


@njit(**_JIT)
def _exit_effects(w, j, spec, state, on, log_w, e, e_end):
    """Transition ``j``'s effects as it fires: hidden triggers drawn; observed ones checked
    against the switches the record shows at that instant (``e:e_end``, those marked as an
    effect's), each effect's chance counted. Returns (on, log_w)."""
    effect_value, observed = spec.effect_value[w], spec.observed
    used = 0
    for f in range(spec.effect_start[j], spec.effect_start[j + 1]):
        k = spec.effect_trigger[f]
        value = effect_value[f]
        is_on = (on >> k) & 1
        if not (observed >> k) & 1:
            if value < 0.0:
                on &= ~(np.int64(1) << k)
            elif not is_on and value > 0.0 and (value >= 1.0 or _uniform(state) < value):
                on |= np.int64(1) << k
            continue
        shown = -1
        for g in range(e, e_end):
            if spec.event_effect[g] != 0 and spec.event_trigger[g] == k:
                shown = g
        if value < 0.0:
            if is_on:
                if shown < 0 or spec.event_on[shown] != 0:
                    return on, -np.inf
                on &= ~(np.int64(1) << k)
                used += 1
        elif not is_on:
            if shown >= 0 and spec.event_on[shown] != 0:
                log_w += math.log(value) if value > 0.0 else -np.inf
                on |= np.int64(1) << k
                used += 1
            else:
                log_w += math.log1p(-value) if value < 1.0 else -np.inf
    for g in range(e, e_end):
        used -= spec.event_effect[g]
    if used != 0:  # the record shows a switch at the entry that no effect made
        return on, -np.inf
    return on, log_w


@njit(**_JIT)
def _forecast_one(w, spec, state, s, t, on, clocks, horizon, entry, first_on, remaining, next_on):
    """One trajectory from stage ``s`` at ``t`` with the triggers ``on`` and the clocks
    already run on the ways out of ``s``, to ``horizon`` (docs/semantics.md): ``entry[s]``
    gets each stage's first entry time, ``first_on[k]`` the first time each trigger is on
    (``remaining`` and ``next_on``: the world's buffers for the clocks and the switches).
    Returns (stage, triggers on) at the horizon, and whether the trajectory had more than
    ``MAX_EVENTS`` events (it stops there)."""
    out_start, target, kind, requires = spec.out_start, spec.target, spec.kind, spec.requires
    p1, p2, ratio = spec.p1[w], spec.p2[w], spec.ratio[w]
    onset_rate, onset_ratio = spec.onset_rate[w], spec.onset_ratio[w]
    offset_rate, offset_ratio = spec.offset_rate[w], spec.offset_ratio[w]
    onset_at, effect_value = spec.onset_at[w], spec.effect_value[w]
    n_k = onset_at.shape[0]
    for k in range(n_k):
        if (on >> k) & 1 and first_on[k] > t:
            first_on[k] = t
    fresh = False
    events = 0
    while True:
        if entry[s] > t:
            entry[s] = t
        if spec.terminal[s]:
            return s, on, False
        first, last = out_start[s], out_start[s + 1]
        for j in range(first, last):
            if fresh:
                remaining[j - first] = _latent(state, kind[j], p1[j], p2[j])
            else:
                c = clocks[j - first]
                remaining[j - first] = _tail_draw(state, kind[j], p1[j], p2[j], c) - c
        fresh = True
        for k in range(n_k):
            h = _switch_hazard(k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio)
            next_on[k] = t + _exponential(state) / h if h > 0.0 else np.inf
        while True:
            events += 1
            if events > MAX_EVENTS:
                return s, on, True
            t_fire, fire = np.inf, -1
            for j in range(first, last):
                sp = _speed(j, on, requires, ratio)
                if sp > 0.0 and t + remaining[j - first] / sp < t_fire:
                    t_fire, fire = t + remaining[j - first] / sp, j
            t_switch, switch = np.inf, -1
            for k in range(n_k):
                if next_on[k] < t_switch:
                    t_switch, switch = next_on[k], k
                if not (on >> k) & 1 and t <= onset_at[k] < t_switch:
                    t_switch, switch = onset_at[k], k
            t_next = min(t_fire, t_switch)
            if t_next > horizon:
                return s, on, False
            dt = t_next - t
            for j in range(first, last):
                remaining[j - first] -= _speed(j, on, requires, ratio) * dt
            t = t_next
            if t_switch <= t_fire:
                on ^= np.int64(1) << switch
                if (on >> switch) & 1 and first_on[switch] > t:
                    first_on[switch] = t
                for k in range(n_k):  # memoryless switches: fresh clocks under the new set
                    h = _switch_hazard(k, s, on, onset_rate, onset_ratio, offset_rate, offset_ratio)
                    next_on[k] = t + _exponential(state) / h if h > 0.0 else np.inf
                continue
            for f in range(spec.effect_start[fire], spec.effect_start[fire + 1]):
                k = spec.effect_trigger[f]
                value = effect_value[f]
                if value < 0.0:
                    on &= ~(np.int64(1) << k)
                elif (
                    not (on >> k) & 1 and value > 0.0 and (value >= 1.0 or _uniform(state) < value)
                ):
                    on |= np.int64(1) << k
                    first_on[k] = min(first_on[k], t)
            s = target[fire]
            break


@njit(parallel=True, **_JIT)
def filter_and_forecast(spec, seeds, n_particles, n_forecast, times, log_l, ess, on_now, reach,
                        fired, at_horizon, on_at_horizon, stalled):  # fmt: skip
    """For each world ``w`` (in parallel; each from its generator ``seeds[w]``): the particle
    estimate of the record's log-likelihood (``log_l[w]``), the effective size of its
    particles at as_of (``ess[w]``) and, when ``n_forecast`` > 0, the
    forecast of ``n_forecast`` trajectories from the filtered particles to ``times[-1]``:
    ``on_now[w, k]`` (on at as_of), ``reach[w, g, s]`` and ``fired[w, g, k]`` (entered, on, by
    ``times[g]``), ``at_horizon[w, s]`` and ``on_at_horizon[w, k]``. A record with no
    sojourn is the prior: each particle starts at t = 0 as the scenario says. ``stalled[w]``
    is set where a sojourn or a trajectory had more than ``MAX_EVENTS`` events."""
    n_worlds = seeds.shape[0]
    n_k = spec.initial.shape[1]
    n_s = spec.terminal.shape[0]
    n_g = times.shape[0]
    n_v = spec.stay_stage.shape[0]
    max_out = 1
    for s in range(n_s):
        max_out = max(max_out, spec.out_start[s + 1] - spec.out_start[s])
    for w in prange(n_worlds):
        state = seeds[w].copy()
        on = np.zeros(n_particles, dtype=np.int64)
        # per particle, the switches of an entry's instant put after it (see _sojourn)
        pending_bits = np.zeros(n_particles, dtype=np.int64)
        pending_on = np.zeros(n_particles, dtype=np.int64)
        pending_slots = np.zeros(n_particles, dtype=np.int64)
        stage = np.zeros(n_particles, dtype=np.int64)
        clocks = np.zeros((n_particles, max_out))
        log_w = np.zeros(n_particles)
        picks = np.empty(n_particles, dtype=np.int64)
        scratch = (np.empty(n_k, np.int64), np.empty(n_k, np.int64), np.empty(max_out))
        observed, start_on = spec.observed, spec.start_on
        initial, onset_at = spec.initial[w], spec.onset_at[w]
        log_start = 0.0  # the observed triggers' start: on or off as the record says
        for k in range(n_k):
            if (observed >> k) & 1 and onset_at[k] > 0.0:
                chance = initial[k] if (start_on >> k) & 1 else 1.0 - initial[k]
                log_start += math.log(chance) if chance > 0.0 else -np.inf
            elif (observed >> k) & 1 and not (start_on >> k) & 1:
                log_start = -np.inf
        for i in range(n_particles):
            bits = start_on
            for k in range(n_k):
                drawn = not (observed >> k) & 1
                if drawn and (onset_at[k] <= 0.0 or _uniform(state) < initial[k]):
                    bits |= np.int64(1) << k
            on[i] = bits
            if n_v == 0:  # the prior: the start stage drawn
                u = _uniform(state)
                s = 0
                while s < n_s - 1 and u >= spec.start_cdf[w, s]:
                    s += 1
                stage[i] = s
        total = log_start
        for v in range(n_v):
            s = spec.stay_stage[v]
            for i in range(n_particles):
                stage[i] = s
                if log_w[i] > -np.inf:
                    pending = (pending_bits[i], pending_on[i], pending_slots[i])
                    on[i], pending, log_w[i] = _sojourn(w, v, spec, state, s, on[i], pending,
                                                        clocks[i], log_w[i], scratch)  # fmt: skip
                    pending_bits[i], pending_on[i], pending_slots[i] = pending
                    if np.isnan(log_w[i]):
                        stalled[w] = 1
                        log_w[:] = -np.inf
                        break
            if v < n_v - 1:
                step = _resample(log_w, picks, state)
                total += step
                if step == -np.inf:
                    break
                on[:] = on[picks]
                pending_bits[:] = pending_bits[picks]
                pending_on[:] = pending_on[picks]
                pending_slots[:] = pending_slots[picks]
                log_w[:] = 0.0
        if n_v > 0 and total > -np.inf:
            top = np.max(log_w)
            if top == -np.inf:
                total = -np.inf
            else:
                total += top + math.log(np.mean(np.exp(log_w - top)))
        log_l[w] = total
        if n_forecast == 0 or total == -np.inf:
            continue
        top = np.max(log_w)
        weights = np.exp(log_w - top)
        weights /= np.sum(weights)
        ess[w] = 1.0 / np.sum(weights * weights)
        for k in range(n_k):
            on_now[w, k] = np.sum(weights * ((on >> k) & 1))
        chosen = np.empty(n_forecast, dtype=np.int64)
        _resample(log_w, chosen, state)
        start = spec.stay_end[n_v - 1] if n_v > 0 else 0.0
        entry = np.empty(n_s)
        first_on = np.empty(n_k)
        remaining = np.empty(max_out)
        next_on = np.empty(n_k)
        # counts first, each trajectory at the first time its entry (switch on) is by; the
        # curves are their running sums
        for r in range(n_forecast):
            i = chosen[r]
            entry[:] = np.inf
            first_on[:] = np.inf
            end_stage, end_on, stuck = _forecast_one(
                w, spec, state, stage[i], start, on[i], clocks[i], times[n_g - 1], entry,
                first_on, remaining, next_on,
            )  # fmt: skip
            if stuck:
                stalled[w] = 1
                break
            at_horizon[w, end_stage] += 1.0
            for k in range(n_k):
                on_at_horizon[w, k] += (end_on >> k) & 1
            for s in range(n_s):
                g = np.searchsorted(times, entry[s])
                if g < n_g:
                    reach[w, g, s] += 1.0
            for k in range(n_k):
                g = np.searchsorted(times, first_on[k])
                if g < n_g:
                    fired[w, g, k] += 1.0
        for g in range(1, n_g):
            reach[w, g] += reach[w, g - 1]
            fired[w, g] += fired[w, g - 1]
        reach[w] /= n_forecast
        fired[w] /= n_forecast
        at_horizon[w] /= n_forecast
        on_at_horizon[w] /= n_forecast
