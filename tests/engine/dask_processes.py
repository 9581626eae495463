"""A Dask cluster started the way the README says: `dask scheduler` and `dask worker`
processes on 127.0.0.1, each in its own session, polled for readiness (never slept for) and
torn down, children included, at the end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the virtual environment's executables
ESCALATE = str(BIN / "escalate")
DASK = str(BIN / "dask")
READY_TIMEOUT = 90.0  # seconds for a process to say it is up
COMMAND_TIMEOUT = 300.0  # seconds for one escalate command


def escalate(*args, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """Run the installed ``escalate`` executable in a subprocess (it holds no Client)."""
    return subprocess.run(
        [ESCALATE, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def wait_until(predicate, what: str, timeout: float = READY_TIMEOUT, every: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class DaskProcesses:
    """``dask scheduler`` and ``workers`` x ``dask worker --nthreads 1`` under ``folder``."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        try:
            self._start_all(workers)
        except BaseException:
            self.close()
            raise

    def _start_all(self, workers: int) -> None:
        folder = self.folder
        self.scheduler = self._start(
            "scheduler",
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(folder / "scheduler.json")],
        )  # fmt: skip
        self.address = wait_until(self._address, "the scheduler's address")
        self.workers = [self._start(f"worker{i}", self._worker(i)) for i in range(workers)]
        for i in range(workers):
            self.wait_registered(i, times=1)

    def _worker(self, i: int) -> list[str]:
        """The README's `dask worker ADDRESS --nthreads 1`, with its files in our folder."""
        return [DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard",
                "--local-directory", str(self.folder / f"worker{i}")]  # fmt: skip

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        process.log = log
        process.log_path = self.folder / f"{name}.log"
        self.processes.append(process)
        return process

    def _address(self) -> str | None:
        if self.scheduler.poll() is not None:
            raise AssertionError(f"dask scheduler exited:\n{self.log('scheduler')}")
        try:
            return json.loads((self.folder / "scheduler.json").read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    def registrations(self, i: int) -> int:
        """How many times worker ``i`` (a nanny restarts its process) joined the scheduler."""
        return self.log(f"worker{i}").count("Registered to:")

    def wait_registered(self, i: int, times: int) -> None:
        wait_until(lambda: self.registrations(i) >= times, f"worker {i} to register {times}x")

    def worker_process(self, i: int):
        """The process that runs worker ``i``'s tasks: the child its nanny spawned."""
        import psutil

        def child():
            for proc in psutil.Process(self.workers[i].pid).children():
                if "multiprocessing.spawn" in " ".join(proc.cmdline()):
                    return proc
            return None

        return wait_until(child, f"worker {i}'s task process")

    def close(self) -> None:
        for process in reversed(self.processes):  # workers first, then the scheduler
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=3)  # a nanny may take longer to say goodbye: not needed
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # what is left of its session goes too
            process.wait()
            process.log.close()

    def __enter__(self) -> DaskProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
