"""A checkpointed job (sweep, sensitivity): its checkpoint beside ``--out``, the folder it
writes, and what an interruption keeps; and the ``--out`` folder of the forecasting commands
(calibrate, nowcast, compare)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalate.cli._render import progress, stderr
from escalate.engine.folder import check_output_folder, write_folder
from escalate.errors import EscalateError


@dataclass(frozen=True)
class Job:
    """The options of a checkpointed job: ``--threads``, ``--out``, ``--force``, ``--resume``,
    ``--scheduler`` and ``--format``."""

    threads: int | None
    out: Path | None
    force: bool
    resume: bool
    scheduler: str | None
    output_format: str


def run_job(
    command: str,
    job: Job,
    fingerprint: dict,
    total: int | None,
    compute: Callable[..., Any],
    *,
    index: bool,
):
    """``compute(threads=, progress=, scheduler=, checkpoint=)`` as a job of ``command``, then
    its folder.

    An existing ``--out`` is refused before any work; the checkpoint (with ``--out``) records
    each finished point under ``fingerprint`` (what must match to resume). The folder receives
    COMMAND.csv (with the frame's index if ``index``), COMMAND.json and the figure.
    """
    out, force = job.out, job.force
    if out is not None:
        check_output_folder(out, force=force)
    checkpoint = _checkpointed(out, job.resume, {"command": command, **fingerprint})

    def work():
        with progress(stderr(), total or 0, unit="points") as advance:
            return compute(
                threads=job.threads,
                progress=advance,
                scheduler=job.scheduler,
                checkpoint=checkpoint,
            )

    result = _checkpointed_run(checkpoint, total, work)
    if out is not None:

        def write(folder: Path) -> None:
            result.frame.to_csv(folder / f"{command}.csv", index=index)
            (folder / f"{command}.json").write_text(result.to_json() + "\n", encoding="utf-8")
            _save_figure(result.plot(), folder / command)

        _write_job(out, write, force, checkpoint)
        stderr().print(f"{command} written: {out}", markup=False, highlight=False)
    return result


def _checkpointed(out: Path | None, resume: bool, fingerprint: dict):
    """The checkpoint of a sweep or sensitivity job writing ``out`` (None without ``--out``)."""
    from escalate.engine.checkpoint import Checkpoint, checkpoint_path

    if out is None:
        if resume:
            raise EscalateError("--resume needs --out: the checkpoint lives beside that folder")
        return None
    return Checkpoint(checkpoint_path(out), fingerprint, resume=resume)


def _checkpointed_run(checkpoint, total: int | None, call):
    """``call()`` under a checkpoint: an interruption keeps the finished points (exit 130), an
    error closes the checkpoint (kept only if it holds points) and propagates."""
    try:
        return call()
    except KeyboardInterrupt:
        _interrupted_job(checkpoint, total)
    except EscalateError:
        _abandon(checkpoint)
        raise


def _write_job(out: Path, write, force: bool, checkpoint) -> None:
    """Write a job's folder whole; the checkpoint goes once it is written."""
    try:
        write_folder(out, write, force=force)
    except EscalateError:
        _abandon(checkpoint)
        raise
    checkpoint.close(remove=True)


def _abandon(checkpoint) -> None:
    """A job failed: close its checkpoint, keeping it only if it holds finished points."""
    if checkpoint is not None:
        checkpoint.close(remove=not checkpoint.done)


def _interrupted_job(checkpoint, total: int | None) -> None:
    err = stderr()
    if checkpoint is None:
        err.print("interrupted: nothing was written", markup=False)
    else:
        checkpoint.close(remove=False)
        err.print(
            f"interrupted: {len(checkpoint.done)}{'' if total is None else f' of {total}'} "
            f"points saved in {checkpoint.path}; "
            "the same command with --resume continues from them",
            markup=False,
        )
    sys.exit(130)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes (manifests name their inputs by it)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_outputs(
    out: Path,
    *,
    force: bool,
    command: str,
    model,
    scenario_file: Path,
    inputs: dict[str, Path | None],
    summary_json: str,
    figures: dict[str, Any],
    manifest: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> None:
    """The ``--out`` folder of a forecasting command, whole or not at all: ``summary.json``,
    each figure as PNG and SVG, ``extra(folder)``'s files, and ``manifest.json`` (the command,
    the scenario and each input file with its SHA-256, then ``manifest``)."""

    def write(folder: Path) -> None:
        (folder / "summary.json").write_text(summary_json + "\n", encoding="utf-8")
        for stem, figure in figures.items():
            _save_figure(figure, folder / stem)
        if extra is not None:
            extra(folder)
        named = {"command": command, "scenario": model.scenario,
                 "scenario_file": str(scenario_file), "scenario_sha256": model.sha256}  # fmt: skip
        for name, path in inputs.items():
            named[f"{name}_file"] = None if path is None else str(path)
            named[f"{name}_sha256"] = None if path is None else sha256_of(path)
        (folder / "manifest.json").write_text(
            json.dumps({**named, **manifest}, indent=2, default=str) + "\n", encoding="utf-8"
        )

    write_folder(out, write, force=force)


def _save_figure(fig, stem: Path) -> None:
    from escalate.output.plots import save_figure

    save_figure(fig, stem)
