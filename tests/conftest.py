"""Shared helpers: write a scenario to a file, run the command line in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture
def cli():
    """Run ``escalate ARGS...`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def scenario_file(tmp_path):
    """Write YAML text (or bytes) to a file in a temporary folder and return its path."""

    def write(content: str | bytes, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write
