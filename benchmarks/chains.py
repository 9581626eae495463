"""Chains of varied shape, and for each the event loop a careful user would write by hand.

The project's speed targets ask that escalate's lead hold on any chain, not only on the
reference one: back-steps and cycles, 1 to 8 triggers, per-stage onsets, onset ``when`` ratios,
offsets and effects. :data:`SHAPES` describes such chains; :func:`generate` turns one into a
scenario (YAML) and :func:`hand_written` into two numba loops specialized to it (every rate a
constant, one branch per stage, no tables, only the count of war): one drawing with numba's
``np.random``, one with the inline xoshiro256** generator escalate itself uses. Both race
hazards as escalate's kernel does (exact for exponential timings), so their P(war) can be
checked against ``solve``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from escalate.engine.kernels import _exponential, _uniform

__all__ = ["SHAPES", "Chain", "generate", "hand_written"]

WAR, SETTLEMENT = "war", "settlement"


@dataclass(frozen=True)
class Shape:
    """What a generated chain has: ``stages`` non-terminal stages in a ladder (the last leads
    to war), ``back`` steps down the ladder, ``triggers``, and which extras they use."""

    name: str
    stages: int
    triggers: int
    back: int = 0
    offsets: bool = False
    onset_when: bool = False
    effects: bool = False
    seed: int = 0


SHAPES = [
    Shape("ladder, 6 stages, 1 per-stage trigger", 6, 1, seed=1),
    Shape("cycles, 6 stages, 2 triggers", 6, 2, back=3, seed=2),
    Shape("ladder, 4 stages, 4 triggers with offsets", 4, 4, back=1, offsets=True, seed=3),
    Shape("web, 8 stages, 3 triggers, onset ratios", 8, 3, back=4, onset_when=True, seed=4),
    Shape("ladder, 5 stages, 3 triggers, effects", 5, 3, back=1, effects=True, seed=5),
    Shape(
        "cycles, 6 stages, 8 triggers, every extra",
        6,
        8,
        back=3,
        offsets=True,
        onset_when=True,
        effects=True,
        seed=6,
    ),
]


@dataclass
class Chain:
    """A generated chain: its scenario text and what the hand-written loops need."""

    shape: Shape
    yaml: str
    horizon: float
    names: list[str]  # non-terminal stages, then war, then settlement
    transitions: list[dict] = field(default_factory=list)  # from, to, rate, when, effects
    initial: list[float] = field(default_factory=list)
    onset: list[dict] = field(default_factory=list)  # per trigger: stage -> rate
    onset_when: list[dict] = field(default_factory=list)  # per trigger: trigger -> ratio
    offset: list[float] = field(default_factory=list)  # per trigger: rate (0: none)


def generate(shape: Shape, horizon: float = 730.0) -> Chain:
    """The chain of ``shape``: rates drawn (seeded) so that a trajectory takes a few to a few
    dozen events, and P(war by the horizon) is neither tiny nor certain."""
    rng = random.Random(shape.seed)
    n = shape.stages
    names = [f"s{i}" for i in range(n)] + [WAR, SETTLEMENT]
    k_all = list(range(shape.triggers))
    transitions = []
    for i in range(n):
        up = names[i + 1] if i + 1 < n else WAR
        transitions.append({"from": names[i], "to": up, "rate": rng.uniform(0.01, 0.03)})
        transitions.append({"from": names[i], "to": SETTLEMENT, "rate": rng.uniform(0.002, 0.006)})
    for b in range(shape.back):
        i = 1 + b % (n - 1)
        transitions.append({"from": names[i], "to": names[i - 1], "rate": rng.uniform(0.01, 0.02)})
    for t in transitions:
        t["when"] = {}
        t["effects"] = {}
        if k_all and t["to"] != SETTLEMENT:
            k = rng.choice(k_all)
            t["when"][k] = round(rng.uniform(1.5, 3.0), 3)
    if shape.effects:
        ups = [t for t in transitions if t["to"] not in (SETTLEMENT,)]
        for j, t in enumerate(ups[: 2 * shape.triggers]):
            k = k_all[j % len(k_all)]
            t["effects"][k] = ["on", "off", round(rng.uniform(0.2, 0.8), 3)][j % 3]
    initial = [round(rng.uniform(0.0, 0.3), 3) if k % 2 == 0 else 0.0 for k in k_all]
    onset = []
    for _k in k_all:
        stages = rng.sample(range(n), k=max(1, n // 2))
        onset.append({names[i]: round(rng.uniform(0.002, 0.01), 5) for i in sorted(stages)})
    onset_when = [
        ({(k + 1) % len(k_all): 2.0} if shape.onset_when and len(k_all) > 1 else {}) for k in k_all
    ]
    offset = [
        (round(rng.uniform(0.005, 0.02), 5) if shape.offsets and k % 2 == 0 else 0.0) for k in k_all
    ]
    chain = Chain(shape, "", horizon, names, transitions, initial, onset, onset_when, offset)
    chain.yaml = _yaml(chain)
    return chain


def _yaml(c: Chain) -> str:
    tn = [f"t{k}" for k in range(len(c.initial))]
    lines = [
        f"scenario: generated-{c.shape.seed}",
        f"title: 'Generated chain: {c.shape.name}'",
        f"horizon: {c.horizon:g}",
        f"start: {c.names[0]}",
        "stages:",
        *[f"  {s}: {{}}" for s in c.names[:-2]],
        f"  {WAR}: {{terminal: true}}",
        f"  {SETTLEMENT}: {{terminal: true}}",
    ]
    if tn:
        lines.append("triggers:")
    for k, name in enumerate(tn):
        per_stage = ", ".join(
            f"{s}: {{rate: {r}"
            + (
                ", when: {" + ", ".join(f"{tn[m]}: {x}" for m, x in c.onset_when[k].items()) + "}"
                if c.onset_when[k]
                else ""
            )
            + "}"
            for s, r in c.onset[k].items()
        )
        lines.append(f"  {name}:")
        lines.append(f"    initial: {c.initial[k]}")
        lines.append(f"    onset: {{{per_stage}}}")
        if c.offset[k] > 0:
            lines.append(f"    offset: {{rate: {c.offset[k]}}}")
    lines.append("transitions:")
    for t in c.transitions:
        extra = ""
        if t["when"]:
            extra += ", when: {" + ", ".join(f"{tn[k]}: {r}" for k, r in t["when"].items()) + "}"
        if t["effects"]:
            extra += ", effects: {" + ", ".join(f"{tn[k]}: {v}" for k, v in t["effects"].items())
            extra += "}"
        lines.append(f"  - {{from: {t['from']}, to: {t['to']}, rate: {t['rate']!r}{extra}}}")
    return "\n".join(lines) + "\n"


def _source(c: Chain, xoshiro: bool) -> str:
    """The text of a loop written for ``c`` alone."""
    uniform = "_uniform(state)" if xoshiro else "np.random.random()"
    exponential = "_exponential(state)" if xoshiro else "np.random.exponential()"
    index = {s: i for i, s in enumerate(c.names)}
    war, settlement = index[WAR], index[SETTLEMENT]
    body = [
        "def loop(n, seed, state):",
        "    np.random.seed(seed)" if not xoshiro else "    pass",
        "    hits = 0",
        "    for _ in range(n):",
        "        s = 0",
        "        t = 0.0",
        "        on = 0",
    ]
    for k, p in enumerate(c.initial):
        if p > 0:
            body.append(f"        if {uniform} < {p!r}:")
            body.append(f"            on |= {1 << k}")
    body += ["        while True:"]
    body.append(f"            if s == {war}:")
    body.append("                hits += 1")
    body.append("                break")
    body.append(f"            if s == {settlement}:")
    body.append("                break")
    for i, stage in enumerate(c.names[:-2]):
        body.append(f"            {'if' if i == 0 else 'elif'} s == {i}:")
        events = []  # (hazard expression, action lines)
        for t in c.transitions:
            if t["from"] != stage:
                continue
            rate = repr(t["rate"])
            factors = "".join(f" * ({r!r} if on & {1 << k} else 1.0)" for k, r in t["when"].items())
            action = []
            for k, v in t["effects"].items():
                if v == "on":
                    action.append(f"on |= {1 << k}")
                elif v == "off":
                    action.append(f"on &= ~{1 << k}")
                else:
                    action += [
                        f"if not on & {1 << k} and {uniform} < {v!r}:",
                        f"    on |= {1 << k}",
                    ]
            action.append(f"s = {index[t['to']]}")
            events.append((f"{rate}{factors}", action))
        for k in range(len(c.initial)):
            bit = 1 << k
            ratio = "".join(f" * (2.0 if on & {1 << m} else 1.0)" for m in c.onset_when[k])
            if stage in c.onset[k]:
                events.append(
                    (f"(0.0 if on & {bit} else {c.onset[k][stage]!r}{ratio})", [f"on |= {bit}"])
                )
            if c.offset[k] > 0:  # an offset without `when`: its rate alone
                events.append((f"({c.offset[k]!r} if on & {bit} else 0.0)", [f"on ^= {bit}"]))
        for e, (hazard, _) in enumerate(events):
            body.append(f"                h{e} = {hazard}")
        body.append("                total = " + " + ".join(f"h{e}" for e in range(len(events))))
        body.append(f"                t += {exponential} / total")
        body.append(f"                if t > {c.horizon!r}:")
        body.append("                    break")
        body.append(f"                u = {uniform} * total")
        running = []
        for e, (_, action) in enumerate(events):
            running.append(f"h{e}")
            if e < len(events) - 1:
                keyword = "if" if e == 0 else "elif"
                body.append(f"                {keyword} u < {' + '.join(running)}:")
            else:
                body.append("                else:")
            body += [f"                    {line}" for line in action]
    return "\n".join(body) + "\n    return hits\n"


def hand_written(c: Chain, xoshiro: bool):
    """A numba function ``loop(n, seed, state) -> hits`` written for ``c`` alone, and its
    source text."""
    source = _source(c, xoshiro)
    namespace = {"np": np, "_uniform": _uniform, "_exponential": _exponential}
    exec(compile(source, f"<hand-written loop: {c.shape.name}>", "exec"), namespace)
    return njit(namespace["loop"]), source
