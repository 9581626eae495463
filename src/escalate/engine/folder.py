"""Run folders: the manifest that makes a run reproducible (the scenario, overrides, horizon,
method, package versions), and writing a folder whole or not at all (into a temporary folder
beside the target, then renamed), refusing to overwrite one without ``force``.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import uuid
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalate.errors import EscalateError

if TYPE_CHECKING:
    from escalate.scenario import Scenario

__all__ = ["check_output_folder", "run_manifest", "write_folder"]


def run_manifest(
    model: Scenario, overrides: dict[str, float] | None, horizon: float, method: str
) -> dict[str, Any]:
    """What every run's manifest says first (run, solve, worlds): the scenario (file, hash,
    resolved text), the overrides, the horizon, the method and the package versions.

    Parameters
    ----------
    model : Scenario
    overrides : dict, optional
        Parameter values set for the run.
    horizon : float
        The run's horizon, in the scenario's time unit.
    method : str
        ``monte-carlo`` or ``exact``.

    Returns
    -------
    dict
        The manifest's common part; each run adds its own figures.
    """
    return {
        "scenario": model.scenario,
        "scenario_file": str(model.file),
        "scenario_sha256": model.sha256,
        "resolved_scenario": model.model_dump(mode="json", by_alias=True, exclude_none=True),
        "overrides": dict(overrides or {}),
        "horizon": horizon,
        "method": method,
        "versions": dict(_versions()),
    }


@functools.cache
def _versions() -> dict[str, str]:
    """Versions for the manifest, read once a process (importlib.metadata costs ~10 ms)."""
    versions = {"python": platform.python_version()}
    for package in ("escalate", "numpy", "numba", "scipy", "pandas", "pydantic", "pyyaml"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover
            versions[package] = "not installed"
    return versions


def check_output_folder(target: Path, *, force: bool) -> None:
    """Refuse an existing output folder unless ``force`` (checked before a run starts too)."""
    if target.exists() and not force:
        raise EscalateError.about("{} already exists; use {force} to replace it", target)
    if target.exists() and not target.is_dir():
        raise EscalateError(f"{target} exists and is not a folder")


def write_folder(target: Path, write, *, force: bool = False) -> Path:
    """Create the folder ``target`` whole or not at all.

    ``write(folder)`` fills a temporary folder beside ``target``, which is then renamed into
    place; on any error or interruption the temporary folder is removed. An existing
    ``target`` is replaced only with ``force``.
    """
    check_output_folder(target, force=force)
    temporary = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()
    except OSError as exc:
        raise EscalateError(f"{target}: cannot create the folder ({exc.strerror})") from None
    try:
        write(temporary)
        _replace(temporary, target, force)
    except OSError as exc:  # a full or read-only disk: nothing is left behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise EscalateError(f"{target}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def _replace(temporary: Path, target: Path, force: bool) -> None:
    if target.exists() and force:
        trash = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, trash)
        os.replace(temporary, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(temporary, target)
