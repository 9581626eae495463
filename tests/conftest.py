"""Shared helpers: write a scenario to a file, run the command line in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
# the installed executable, as a user runs it (tests of a command run it in a subprocess)
ESCALATE = str(Path(sys.executable).parent / "escalate")


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


class OnATerminal:
    """A command whose standard error is a terminal (a pseudo-terminal), as a user sees it:
    it draws its progress bar there, which tells a test, without sleeping, that the work is
    under way."""

    def __init__(self, command: list[str], timeout: float = 120.0):
        import os
        import pty
        import signal
        import subprocess

        master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
        # Ctrl-C as a terminal delivers it: a suite started in the background of a shell
        # without job control inherits SIGINT ignored, and Python then never sees it
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        os.close(slave)
        self.master, self.timeout, self.seen = master, timeout, b""

    def _read(self, wait: float) -> bool:
        """Read what the terminal shows within ``wait`` s; False once it is closed."""
        import os
        import select

        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the command closed its side
            return False
        self.seen += chunk
        return bool(chunk)

    def wait_for(self, pattern: bytes) -> None:
        """Poll the terminal until ``pattern`` (a regex) shows, or fail."""
        import re
        import time

        deadline = time.monotonic() + self.timeout
        while not re.search(pattern, self.seen):
            if time.monotonic() > deadline or not self._read(0.05):
                self.process.kill()
                raise AssertionError(f"{pattern!r} never showed; the terminal: {self.seen!r}")

    def finish(self) -> str:
        """Wait for the command to end (at most ``timeout`` s); what its terminal showed."""
        import os
        import subprocess
        import time

        deadline = time.monotonic() + self.timeout
        while self._read(1.0) and self.process.poll() is None and time.monotonic() < deadline:
            pass
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            self.process.kill()  # a command that never ends must not outlive the test
            raise
        while self._read(0.0):
            pass
        os.close(self.master)
        return self.seen.decode(errors="replace")
