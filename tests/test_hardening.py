"""Interrupted work and limits: checkpoints that resume to the same result, SIGTERM that leaves
nothing half written, runs refused before they take hours, disks that refuse to be written."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

import escalate
from escalate.engine.checkpoint import Checkpoint, checkpoint_path

from .conftest import ESCALATE, ROOT, OnATerminal

TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"
SWEEP = ["--vary", "talks_mean=30:120:8", "--metric", "p_reached:war", "-n", "2e5", "--seed", "5"]


def test_an_interrupted_sweep_resumes_to_the_same_result(tmp_path):
    model = escalate.load(TUTORIAL)
    vary = {"talks_mean": [30.0, 45.0, 60.0, 75.0, 90.0, 105.0]}
    metrics = ["p_reached:war", "time_to_reach:war:p50"]
    whole = escalate.sweep(model, vary, metrics, n=50_000, seed=9)
    job = {"test": "sweep"}

    def stop_half_way(done, total):
        if done == total // 2:
            raise KeyboardInterrupt

    path = tmp_path / "sweep.checkpoint.jsonl"
    first = Checkpoint(path, job, resume=False)
    with pytest.raises(KeyboardInterrupt):
        escalate.sweep(
            model, vary, metrics, n=50_000, seed=9, progress=stop_half_way, checkpoint=first
        )
    first.close(remove=False)
    second = Checkpoint(path, job, resume=True)
    assert len(second.done) == 3
    resumed = escalate.sweep(model, vary, metrics, n=50_000, seed=9, checkpoint=second)
    second.close(remove=True)
    assert resumed.to_json() == whole.to_json()


def test_sigterm_mid_sweep_then_resume_from_the_command_line(cli, tmp_path):
    out = tmp_path / "sweep"
    command = [ESCALATE, "sweep", str(TUTORIAL), *SWEEP, "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = checkpoint_path(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and len(checkpoint.read_text().splitlines()) >= 3:
            break  # the job line and at least two finished points
        time.sleep(0.02)
    assert process.poll() is None, "the sweep ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume continues" in stderr and "Traceback" not in stderr
    assert not out.exists()  # no partial folder; the finished points wait in the checkpoint
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.name]

    resumed = cli("sweep", TUTORIAL, *SWEEP, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert not checkpoint.exists()
    assert cli("sweep", TUTORIAL, *SWEEP, "--out", tmp_path / "whole").exit_code == 0
    assert (out / "sweep.json").read_text() == (tmp_path / "whole" / "sweep.json").read_text()


def test_resume_refuses_a_different_job(cli, tmp_path):
    out = tmp_path / "sweep"
    Checkpoint(checkpoint_path(out), {"another": "job"}, resume=False).close(remove=False)
    result = cli("sweep", TUTORIAL, *SWEEP, "--out", out, "--resume")
    assert result.exit_code == 2 and "belongs to a different job" in result.stderr
    result = cli("sweep", TUTORIAL, *SWEEP, "--resume")
    assert result.exit_code == 2 and "--resume needs --out" in result.stderr
    result = cli("sweep", TUTORIAL, *SWEEP, "--out", tmp_path / "other", "--resume")
    assert result.exit_code == 2 and "nothing to resume" in result.stderr


@pytest.mark.slow
def test_sigterm_mid_run_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    command = [ESCALATE, "run", str(TUTORIAL), "-n", "1e9"]
    terminal = OnATerminal([*command, "--out", str(out)])
    terminal.wait_for(rb"[1-9]\d*%")  # the progress bar moved: the run is under way
    terminal.process.send_signal(signal.SIGTERM)
    shown = terminal.finish()
    assert terminal.process.returncode == 130 and "nothing was written" in shown
    assert "Traceback" not in shown
    assert list(tmp_path.iterdir()) == []


def test_a_run_longer_than_max_seconds_is_refused(cli, tmp_path):
    result = cli("run", TUTORIAL, "-n", "1e12", "--max-seconds", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "more than --max-seconds 1" in result.stderr and "fit" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_refuses_writes_gives_a_clear_error(cli, tmp_path, monkeypatch):
    import pandas as pd

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    result = cli("run", TUTORIAL, "-n", "1e4", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "cannot write (No space left on device)" in result.stderr
    assert list(tmp_path.iterdir()) == []
    result = cli("run", TUTORIAL, "-n", "1e4", "--out", "/dev/null/run")
    assert result.exit_code == 2 and "cannot create the folder" in result.stderr


def test_an_alias_bomb_is_refused_without_expanding(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    pairs = zip("abcdefgh", "bcdefghi", strict=True)
    bomb += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in pairs]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n")
    # ten levels of ten: 10**10 nodes if expanded; refused at once instead (a hang would
    # hit the timeout)
    done = subprocess.run(
        [ESCALATE, "validate", str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "alias" in done.stderr and "Traceback" not in done.stderr
    error, verdict = done.stderr.splitlines()  # one located message, then validate's verdict
    assert error.startswith(f"{path}:1:") and verdict == f"{path}: invalid (1 error)"


def test_a_checkpoint_line_cut_by_an_interruption_is_dropped(tmp_path):
    path = tmp_path / "job.checkpoint.jsonl"
    first = Checkpoint(path, {"job": 1}, resume=False)
    for i in range(3):
        first.add(i, [float(i), "exact"])
    first.close(remove=False)
    with path.open("a") as handle:
        handle.write('{"i": 3, "val')  # the interruption cut this line
    second = Checkpoint(path, {"job": 1}, resume=True)
    assert sorted(second.done) == [0, 1, 2]
    second.add(3, [3.0, "exact"])
    second.add(4, [4.0, "exact"])
    second.close(remove=False)
    third = Checkpoint(path, {"job": 1}, resume=True)
    assert sorted(third.done) == [0, 1, 2, 3, 4] and third.done[4] == [4.0, "exact"]
    third.close(remove=True)
    assert not path.exists()
