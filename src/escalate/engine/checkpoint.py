"""Checkpoints of long sweeps and sensitivity designs: finished points survive an interruption.

A checkpoint is a JSON-lines file beside the output folder (``OUT.checkpoint.jsonl``): a first
line with the fingerprint of the job (scenario hash, grid, metrics, seed...), then one line per
finished point, flushed and synced as it finishes. ``--resume`` reuses the points whose lines
are complete; each point is a pure function of its inputs, so the resumed job ends with the
same figures as an uninterrupted one. The file is removed once the job's folder is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from escalate.errors import EscalateError

__all__ = ["Checkpoint", "checkpoint_path"]


def checkpoint_path(out: Path) -> Path:
    """Where the checkpoint of a job writing folder ``out`` lives."""
    return out.with_name(out.name + ".checkpoint.jsonl")


class Checkpoint:
    """Finished points of one job, keyed by their index in the job's list of points."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any], *, resume: bool):
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.done: dict[int, Any] = {}
        if resume:
            self._load()
        try:
            if not self.done:
                self.path.write_text(json.dumps({"job": self.fingerprint}) + "\n", encoding="utf-8")
            self.handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise EscalateError(
                f"{self.path}: cannot write the checkpoint ({exc.strerror})"
            ) from None

    def _load(self) -> None:
        if not self.path.exists():
            raise EscalateError(
                f"resume: no checkpoint at {self.path} (nothing to resume)", parameter="resume"
            )
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            job = json.loads(lines[0])["job"] if lines else None
        except (ValueError, KeyError, TypeError):
            job = None
        if job != self.fingerprint:
            raise EscalateError.about(
                "{resume}: the checkpoint {} belongs to a different job (scenario, grid, "
                "metrics or seed changed); run without {resume} to start again",
                self.path,
            )
        kept = [lines[0]]
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                self.done[int(entry["i"])] = entry["value"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by the interruption: that point runs again
            kept.append(line)
        # rewrite without the cut lines, so that new points start on a line of their own
        self.path.write_text("\n".join(kept) + "\n", encoding="utf-8")

    def add(self, index: int, value: Any) -> None:
        self.done[index] = value
        self.handle.write(json.dumps({"i": index, "value": value}) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self, *, remove: bool) -> None:
        self.handle.close()
        if remove:
            self.path.unlink(missing_ok=True)
