"""What one row of the benchmarks measures, each in its own process (``python -m benchmarks
--row ...`` and the like): escalate and its peers on the reference chain and the chain with
cycles, the shipped scenarios, generated chains, exact worlds, start-up and scaling."""

from __future__ import annotations

import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# --- one row, in its own process -------------------------------------------------------------


# --- the tables --------------------------------------------------------------------------------


HERE = Path(__file__).resolve().parent


REFERENCE = HERE / "reference.yaml"


CHAINS = {"reference": REFERENCE, "cycles": HERE / "cycles.yaml"}


TARGET = "war"


SEED = 20261125


CHAIN_SECONDS = 0.5  # generated chains: each method runs what escalate on 1 thread runs in this


CHAIN_REPEATS = 5  # generated chains: timed calls per method (a median of 3 let one slow call in)


# name: (trajectories, repeats, quick trajectories) -- sizes that fit each peer's speed/memory
ROWS = {
    "escalate, 2 threads": (20_000_000, 9, 1_000_000),
    "escalate, 1 thread": (10_000_000, 9, 500_000),
    "escalate solve (exact)": (None, 5, None),
    "numba loop, inline xoshiro256** (1 thread)": (5_000_000, 5, 200_000),
    "numba loop, numba np.random (1 thread)": (5_000_000, 5, 200_000),
    "pure-Python event loop": (100_000, 3, 5_000),
    "numpy, day-stepped, unabsorbed only": (100_000, 5, 5_000),
    "numpy, day-stepped, every trajectory": (20_000, 5, 1_000),
    "quantecon MarkovChain.simulate (daily)": (20_000, 5, 1_000),
    "PyDTMC simulate (daily)": (200, 1, 20),
}


# What was measured on the reference chain of the project's speed targets on this machine when
# they were set (trajectories/s): the fingerprint of how much work one of its trajectories is,
# set beside our chains.
REFERENCE_RATES = {
    "numba loop, numba np.random (1 thread)": "7.7 M/s",
    "numba loop, inline xoshiro256** (1 thread)": "20.8 M/s",
    "pure-Python event loop": "820 k/s",
    "numpy, day-stepped, unabsorbed only": "116 k/s",
    "numpy, day-stepped, every trajectory": "20 k/s",
    "quantecon MarkovChain.simulate (daily)": "38-123 k/s",
    "PyDTMC simulate (daily)": "90 /s",
}


def compiled_reference(path: Path = REFERENCE):
    import escalate
    from escalate.engine.compile import compile_scenario

    return escalate.load(path), compile_scenario(escalate.load(path))


def measure_row(name: str, n: int | None, repeats: int, chain: str = "reference") -> dict:
    """Time one row (median over ``repeats`` after a warm call) and return its estimate."""
    import numba

    from benchmarks import peers

    model, c = compiled_reference(CHAINS[chain])
    if name.startswith("escalate, "):
        import escalate

        threads = 1 if "1 thread" in name else min(2, numba.config.NUMBA_NUM_THREADS)

        def run(k):
            result = escalate.simulate(model, k, seed=SEED, threads=threads)
            return round(result.stages[TARGET].p_reached * k)

    elif name == "escalate solve (exact)":
        import escalate

        def run(k):
            return escalate.solve(model).stages[TARGET].p_reached

    elif name.startswith("numba loop"):
        xoshiro = "xoshiro" in name

        def run(k):
            return peers.bare_numba_loop(c, TARGET, k, SEED, xoshiro=xoshiro)

    elif name == "pure-Python event loop":

        def run(k):
            return peers.pure_python_event_loop(c, TARGET, k, SEED)

    else:
        daily = peers.DailyChain(c, TARGET)
        if name.startswith("numpy"):
            unabsorbed = "unabsorbed" in name

            def run(k):
                return peers.numpy_day_stepped(daily, k, SEED, only_unabsorbed=unabsorbed)

        elif name.startswith("quantecon"):

            def run(k):
                return peers.quantecon_simulate(daily, k, SEED)

        else:

            def run(k):
                return peers.pydtmc_simulate(daily, k, SEED)

    run(min(n, 1_000) if n else None)  # warm: imports and compilation
    walls, value = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        value = run(n)
        walls.append(time.perf_counter() - began)
    return {
        "name": name,
        "n": n,
        "wall": statistics.median(walls),
        "value": value,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def subprocess_row(args: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark row failed: {' '.join(args)}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(name: str, n: int | None, repeats: int, chain: str) -> dict:
    args = ["--row", name, "--n", str(n or 0), "--repeats", str(repeats), "--chain", chain]
    return subprocess_row(args)


def exact_p(chain: str = "reference") -> float:
    import escalate

    return escalate.solve(CHAINS[chain]).stages[TARGET].p_reached


def draws_per_trajectory(chain: str, m: int = 2_000) -> float:
    """Random numbers escalate's kernel consumes per trajectory on a chain, counted exactly
    by stepping a copy of one chunk's generator to its end state."""
    import numpy as np

    from benchmarks.peers import _draws_between
    from escalate.engine.simulate import _Batch, chunk_state, launch

    _, c = compiled_reference(CHAINS[chain])
    before = chunk_state(SEED, 0)
    states = before[None, :].copy()
    launch(c, np.array([m], np.int64), states, _Batch(c, 1))
    return _draws_between(before, states[0], 10**8) / m


VENEZUELA = HERE.parent / "scenarios" / "venezuela.yaml"


LANGUAGE = HERE / "language.yaml"


def scenario_row(path: Path, stage: str, threads: int, n: int) -> dict:
    return subprocess_row(
        ["--scenario", str(path), "--stage", stage, "--threads", str(threads), "--n", str(n)]
    )


def measure_scenario(path: Path, stage: str, threads: int, n: int) -> dict:
    """Median wall of ``n`` trajectories of a scenario on ``threads`` (negative: solve)."""
    import escalate

    model = escalate.load(path)
    if threads < 0:
        escalate.solve(model)
        walls = []
        for _ in range(5):
            began = time.perf_counter()
            result = escalate.solve(model)
            walls.append(time.perf_counter() - began)
    else:
        import numba

        kwargs = {"threads": min(threads, numba.config.NUMBA_NUM_THREADS)}
        escalate.simulate(model, 10_000, seed=SEED, **kwargs)
        walls = []
        for _ in range(3):
            began = time.perf_counter()
            result = escalate.simulate(model, n, seed=SEED, **kwargs)
            walls.append(time.perf_counter() - began)
    stats = result.stages[stage]
    return {"wall": statistics.median(walls), "p": stats.p_reached, "se": stats.p_reached_se}


def measure_shape(index: int, n: int, seconds: float) -> dict:
    """One generated chain (benchmarks/chains.py): escalate on 1 and 2 threads beside the two
    loops written for that chain alone, medians of ``CHAIN_REPEATS`` after a warm call, P(war)
    of each.

    Every method runs the same number of trajectories: at least ``n``, and as many as
    escalate on one thread runs in ``seconds`` (a fast chain's run of ``n`` would be short
    enough for a call's fixed costs and the timer's noise to show in its rate)."""
    import numba

    import escalate
    from benchmarks.chains import SHAPES, generate, hand_written
    from escalate.engine.simulate import chunk_state

    chain = generate(SHAPES[index])
    model = escalate.loads(chain.yaml)
    if seconds > 0:
        escalate.simulate(model, 10_000, seed=SEED, threads=1)
        began = time.perf_counter()
        escalate.simulate(model, 200_000, seed=SEED, threads=1)
        rate = 200_000 / (time.perf_counter() - began)
        n = max(n, int(round(rate * seconds, -5)))
    out = {"exact": escalate.solve(model).stages["war"].p_reached, "n": n}

    def median_wall(call) -> float:
        call(min(n, 10_000))
        walls = []
        for _ in range(CHAIN_REPEATS):
            began = time.perf_counter()
            out["hits"] = call(n)
            walls.append(time.perf_counter() - began)
        return statistics.median(walls)

    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):

        def run(size, threads=threads):
            result = escalate.simulate(model, size, seed=SEED, threads=threads)
            return round(result.stages["war"].p_reached * size)

        out[f"escalate {threads}"] = n / median_wall(run)
        out[f"escalate {threads} p"] = out["hits"] / n
    for label, xoshiro in (("np.random", False), ("xoshiro", True)):
        loop, _ = hand_written(chain, xoshiro)
        out[label] = n / median_wall(lambda size, loop=loop: loop(size, SEED, chunk_state(SEED, 0)))
        out[f"{label} p"] = out["hits"] / n
    return out


def measure_worlds(method: str, worlds: int) -> dict:
    """Exact worlds of the shipped scenario, in one process: ``escalate`` (every horizon metric
    of every world, as ``solve --worlds`` gives them) or ``naive`` (one dense
    ``scipy.linalg.expm`` of the joint generator per world: the distribution at the horizon
    and nothing else), on the same Latin-hypercube worlds. Returns the wall per world."""
    import escalate
    from escalate.analysis.draws import draw_worlds
    from escalate.analysis.worlds import run_worlds

    model = escalate.load(VENEZUELA)
    if method == "escalate":
        run_worlds(model, 4, seed=SEED, engine="exact")  # warm
        began = time.perf_counter()
        run_worlds(model, worlds, seed=SEED, engine="exact")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"per_world": (time.perf_counter() - began) / worlds, "worlds": worlds,
                "peak_kb": peak}  # fmt: skip
    from scipy import linalg

    from escalate.engine.chain import Chain
    from escalate.engine.compile import compile_scenario

    drawn = draw_worlds(model, worlds, SEED)
    began = time.perf_counter()
    for w in range(worlds):
        values = {k: float(v) for k, v in drawn.iloc[w].items()}
        chain = Chain(compile_scenario(model, values))
        at_horizon = chain.p0 @ linalg.expm(chain.q.toarray() * chain.c.horizon)
    assert abs(at_horizon.sum() - 1) < 1e-6
    return {"per_world": (time.perf_counter() - began) / worlds, "worlds": worlds}


BARE_IMPORT = "import numpy, numba, scipy.linalg, yaml, pydantic, rich, click"


def escalate_command() -> list[str]:
    """The installed ``escalate`` executable beside this Python (else ``python -m escalate``)."""
    executable = Path(sys.executable).parent / "escalate"
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "escalate"]


def ladder(stages: int, triggers: int, horizon: float = 730) -> str:
    """A generated scenario: ``stages - 2`` rungs, then war and peace (terminal)."""
    rungs = stages - 2
    text = [f"scenario: ladder-{stages}-{triggers}", f"horizon: {horizon}", "start: r0", "stages:"]
    text += [f"  r{i}: {{}}" for i in range(rungs)]
    text += ["  war: {terminal: true}", "  peace: {terminal: true}"]
    if triggers:
        text.append("triggers:")
        text += [f"  t{k}: {{initial: 0.1, onset: {{rate: 0.002}}}}" for k in range(triggers)]
    text.append("transitions:")
    for i in range(rungs):
        up = f"r{i + 1}" if i + 1 < rungs else "war"
        ratios = [f"t{k}: 2" for k in range(triggers) if k % rungs == i]
        when = f", when: {{{', '.join(ratios)}}}" if ratios else ""
        text.append(f"  - {{from: r{i}, to: {up}, rate: 0.12{when}}}")
        if i:
            text.append(f"  - {{from: r{i}, to: r{i - 1}, rate: 0.04}}")
        text.append(f"  - {{from: r{i}, to: peace, rate: 0.002}}")
    return "\n".join(text) + "\n"


def measure_scale(axis: str, value: float, n: int) -> dict:
    import escalate

    if axis in ("n", "horizon"):
        model = escalate.load(REFERENCE)
        horizon = value if axis == "horizon" else None
    else:
        stages, triggers = (int(value), 2) if axis == "stages" else (10, int(value))
        model = escalate.loads(ladder(stages, triggers))
        horizon = None
    escalate.simulate(model, 1_000, seed=SEED, horizon=horizon)  # warm
    began = time.perf_counter()
    result = escalate.simulate(model, n, seed=SEED, horizon=horizon)
    wall = time.perf_counter() - began
    stats = result.stages[TARGET]
    return {
        "wall": wall,
        "p": stats.p_reached,
        "se": stats.p_reached_se,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def write_section(title: str, section: str, path: Path = HERE / "RESULTS.md") -> None:
    """Put ``section`` (headed ``title``) in RESULTS.md in place of its previous version,
    else before Scaling: a benchmark run on its own updates its section alone."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(title) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.replace("## Scaling", section + "\n## Scaling", 1)
    path.write_text(text, encoding="utf-8")
