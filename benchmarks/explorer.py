"""The explorer, measured through the page: from a key press on a slider to the updated view.

``python -m benchmarks.explorer`` serves each shipped scenario with the installed ``escalate
explore``, opens it in headless Chromium (Debian's, driven by playwright), and presses the
arrow keys on a parameter's slider, alternately right and left. A move is timed in the page,
from the key going down to the page's URL carrying the new setting: the server sends the URL
with the headline, curves and table in one message, after the answer is computed, so this is
the whole round trip (playwright's own calls to the browser are not in it).
The section it writes into ``benchmarks/RESULTS.md`` is also written by ``python -m benchmarks``.
"""

from __future__ import annotations

import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.measure import escalate_command, write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TITLE = "## The explorer: a key press on a slider to the updated page"
BUDGET_MS = 200
MEMORYLESS = ["venezuela", "venezuela-decapitation", "india-pakistan", "taiwan"]
WITH_DELAYS = ["tutorial", "essequibo"]  # a fixed-seed Monte Carlo run per move
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


# in the page: when a key went down, and when the page's URL changed (the server's message)
WATCH = """() => {
    window._pushes = [];
    const push = history.pushState.bind(history);
    history.pushState = (...args) => {
        window._pushes.push(performance.now());
        return push(...args);
    };
    document.addEventListener("keydown", () => { window._pressed = performance.now(); }, true);
}"""


def _serve(scenario: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [*escalate_command(), "explore", str(scenario), "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in process.stderr:
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found:
            return process, found.group()
    raise RuntimeError(f"escalate explore {scenario} did not start")


def measure(page_of, scenario: str, moves: int) -> dict:
    """Median and 90th percentile of ``moves`` key presses on the first parameter slider."""
    process, url = _serve(ROOT / "scenarios" / f"{scenario}.yaml")
    try:
        page = page_of()
        page.goto(url)
        page.locator(".escalate-headline >> text=P(").wait_for(timeout=120_000)
        handle = page.locator(".noUi-handle").nth(1)  # 0 is the horizon
        page.evaluate(WATCH)
        handle.focus()
        walls = []
        for move in range(moves + 2):
            pushed = page.evaluate("window._pushes.length")
            handle.press("ArrowRight" if move % 2 == 0 else "ArrowLeft")
            page.wait_for_function(f"() => window._pushes.length > {pushed}", timeout=30_000)
            walls.append(page.evaluate("window._pushes.at(-1) - window._pressed"))
        walls = walls[2:]  # the first moves warm the page and the server
        method = page.locator(".escalate-method >> text=/Exact|Monte Carlo/").inner_text()
        page.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    return {
        "scenario": scenario,
        "answer": _answer_ms(ROOT / "scenarios" / f"{scenario}.yaml"),
        "median": statistics.median(walls),
        "p90": statistics.quantiles(walls, n=10)[-1],
        "method": method.split(".")[0].split(":")[0],
        "moves": moves,
    }


def _answer_ms(path: Path, repeats: int = 9) -> float:
    """The answer alone, in this process (median ms): what a move costs before the page."""
    from escalate.explore import Explorable
    from escalate.scenario import load

    explorable = Explorable(load(path))
    explorable.answer(explorable.default)
    walls = []
    for _ in range(repeats):
        began = time.perf_counter()
        explorable.answer(explorable.default)
        walls.append(1000 * (time.perf_counter() - began))
    return statistics.median(walls)


def explorer_section(quick: bool = False) -> str:
    """The section of RESULTS.md: one row per shipped scenario (or why there is none)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright

        import escalate.explore  # noqa: F401  (panel installed)
    except Exception as exc:  # the reason goes in the table
        return f"{TITLE}\n\nNot measured: {exc}.\n"
    if chromium is None:
        return f"{TITLE}\n\nNot measured: Chromium is not installed.\n"
    moves = 6 if quick else 20
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)

        def page_of():
            return browser.new_page(viewport={"width": 1300, "height": 900})

        for scenario in MEMORYLESS + WITH_DELAYS:
            print(f"benchmarks: the explorer on {scenario} ...", file=sys.stderr)
            rows.append(measure(page_of, scenario, moves))
        browser.close()
    lines = [
        TITLE,
        "",
        f"`escalate explore` serving each shipped scenario, driven in headless Chromium: {moves} "
        "key presses on the first parameter's slider, alternately right and left, each timed "
        "in the page from the key going down until the page's URL carries the new value (the "
        "server sends it with the headline, the curves and the table, in one message, once the "
        "answer is computed). The answer alone is `Explorable.answer` in one process, the "
        "median of 9: the rest of a move is the page's (the server's messages and the "
        "browser's drawing, on the same two cores).",
        "",
        "| scenario | answer per move | the answer alone (ms) | through the page: median (ms) "
        "| 90th percentile (ms) | within 200 ms |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for row in rows:
        memoryless = row["scenario"] in MEMORYLESS
        met = ("yes" if row["median"] <= BUDGET_MS else "no") if memoryless else "(not a target)"
        lines.append(
            f"| `scenarios/{row['scenario']}.yaml` | {row['method']} | {row['answer']:.0f} | "
            f"{row['median']:.0f} | {row['p90']:.0f} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    section = explorer_section(quick)
    print(section)
    if "--no-write" not in (argv if argv is not None else sys.argv[1:]):
        write_section(TITLE, section)


if __name__ == "__main__":
    main()
