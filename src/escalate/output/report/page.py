"""What every page of the report shares: the style sheet, the page around a body (with the
image check the tests read), figures embedded from the folder, the folder's JSON and CSV
files read."""

from __future__ import annotations

import base64
import csv
import datetime
import json
from html import escape
from pathlib import Path
from typing import Any

from escalate.engine.numbers import Z95
from escalate.errors import EscalateError

__all__ = ["STYLE", "figure", "image", "page", "plus_minus", "read_csv", "read_json"]


STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 68rem; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.6rem 0.9rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.6rem 0; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
td.nowrap, th, td:not(.text) { white-space: nowrap; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
dt { font-weight: 600; margin-top: 0.5rem; } dd { margin-left: 1rem; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
"""


def read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EscalateError(
            f"{folder}: not a run folder (no {name}); make one with escalate run --out"
        ) from None
    except (OSError, ValueError) as exc:
        raise EscalateError(f"{path}: cannot be read as JSON ({exc})") from None


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def figure(folder: Path, name: str, heading: str) -> str:
    """A section of one figure of the folder under its heading ("" if not there)."""
    embedded = image(folder, name, heading)
    return f"<h2>{escape(heading)}</h2>{embedded}" if embedded else ""


def image(folder: Path, name: str, alt: str) -> str:
    """``name.png`` of the folder embedded in the page ("" if not there)."""
    path = folder / f"{name}.png"
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{escape(alt)}' src='data:image/png;base64,{data}'/></figure>"


def manifest_section(manifest: dict[str, Any]) -> list[str]:
    """The page's last section: the manifest of the folder, as written."""
    return ["<h2>Manifest</h2>",
            "<pre>" + escape(json.dumps(manifest, indent=2, default=str)) + "</pre>"]  # fmt: skip


def plus_minus(change, se: float | None) -> str:
    """``± 4.6 pts``: a 95% half-width from a standard error (a dash when there is none)."""
    return "—" if se is None else f"± {change(Z95 * se).lstrip('+')}"


def page(title: str, body: list[str]) -> str:
    """A complete page around ``body``, with the image check the tests read."""
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'/>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'/>",
        f"<title>{escape(title)} — escalate report</title>",
        f"<style>{STYLE}</style></head><body>",
        *body,
        f"<p class='meta'>Report made {datetime.datetime.now().isoformat(timespec='seconds')} "
        "by escalate from its folder alone.</p>",
        # marks on the page whether every figure decoded (read by tests in a headless browser)
        # (no '<' or '&' inside: the script is raw text in HTML and parsed text in XML)
        "<script>window.addEventListener('load', function () { var i = document.images, ok = 0;"
        " for (var k = 0; i.length > k; k++) { if (i[k].complete) { if (i[k].naturalWidth > 0)"
        " { ok++; } } } document.body.setAttribute('data-images', ok + '/' + i.length); });"
        "</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
