"""The README's gallery of shipped scenarios, generated so that it cannot go stale.

Per scenario in ``scenarios/``: what it models (its title) and its headline figure, P(its
headline stage, the first war, else the last stage) by the horizon, exact where every timing is
exponential, else from 200,000 trajectories with seed 1 and the 95% interval. The README holds
the table between two markers; ``python scripts/gallery.py`` rewrites it there, ``--check``
exits 1 when it differs (a test runs that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import escalate
from escalate.engine.compile import compile_scenario

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- gallery:start -->", "<!-- gallery:end -->"
TRAJECTORIES, SEED = 200_000, 1


def rows(root: Path = ROOT) -> list[str]:
    """The gallery's table, one row per shipped scenario, in file-name order."""
    lines = [
        "| scenario | what it models | headline figure |",
        "|---|---|---|",
    ]
    for path in sorted((root / "scenarios").glob("*.yaml")):
        model = escalate.load(path)
        if compile_scenario(model).is_markov:
            result = escalate.solve(model)
        else:
            result = escalate.simulate(model, TRAJECTORIES, seed=SEED)
        text = result.headline_text().split(";")[0]
        how = "" if result.method == "exact" else f" ({TRAJECTORIES:,} trajectories, seed {SEED})"
        lines.append(f"| `scenarios/{path.name}` | {model.title or model.scenario} | {text}{how} |")
    return lines


def updated(readme: str, table: list[str]) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n" + "\n".join(table) + f"\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = updated(text, rows())
    if args.check:
        if new != text:
            print("README.md's gallery is stale: run python scripts/gallery.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
