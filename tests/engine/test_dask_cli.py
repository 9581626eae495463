"""`--scheduler` as a user runs it: the installed `escalate` executable, in a subprocess that
holds no Client, against `dask scheduler` and `dask worker` processes started the README's way
on 127.0.0.1. The same seed gives the local JSON byte for byte, a worker killed mid-run changes
nothing, and every failure is one line with exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from ..conftest import ROOT
from .dask_processes import ESCALATE, DaskProcesses, escalate, wait_until

pytest.importorskip("distributed")

TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"  # has non-exponential delays: simulated
VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with DaskProcesses(tmp_path_factory.mktemp("dask"), workers=2) as processes:
        yield processes


def _same_here_and_there(cluster, *args, progress: bool = False) -> dict:
    """The command here and on the cluster: the same stdout; on stderr no Dask chatter
    (nothing at all, or with ``progress`` only the command's own progress lines)."""
    here = escalate(*args)
    there = escalate(*args, "--scheduler", cluster.address)
    assert here.returncode == 0, here.stderr
    assert there.returncode == 0, there.stderr
    if progress:
        assert "Traceback" not in there.stderr and "distributed" not in there.stderr
    else:
        assert there.stderr == ""  # no Dask chatter on a user's terminal
    assert there.stdout == here.stdout
    return json.loads(there.stdout)


def test_run_is_identical_on_the_cluster(cluster):
    summary = _same_here_and_there(
        cluster, "run", VENEZUELA, "-n", "4e5", "--seed", "9", "--format", "json"
    )  # four chunks of their own random streams, merged: the cluster's task as the local run's
    assert summary["trajectories"] == 400_000 and summary["seed"] == 9


def test_solve_worlds_are_identical_on_the_cluster(cluster):
    summary = _same_here_and_there(
        cluster, "solve", VENEZUELA, "--worlds", "40", "--seed", "3", "--format", "json"
    )
    assert summary["worlds"]["count"] == 40


def test_sweep_is_identical_on_the_cluster(cluster):
    summary = _same_here_and_there(
        cluster, "sweep", TUTORIAL, "--vary", "talks_mean=30:120:4", "--metric", "p_reached:war",
        "--metric", "time_on:buildup", "--metric", "p_on_at_horizon:incident",
        "--metric", "p_reached:war@2026-06-30", "-n", "2e5", "--seed", "5", "--format", "json",
    )  # fmt: skip
    assert len(summary["points"]) == 4


def test_sensitivity_is_identical_on_the_cluster(cluster):
    summary = _same_here_and_there(
        cluster, "sensitivity", VENEZUELA, "--method", "oat",
        "--metric", "p_reached:full_scale_war", "--format", "json",
    )  # fmt: skip
    assert summary["method"] == "oat" and summary["evaluations"] > 2


def test_the_python_api_takes_an_address_from_a_process_without_a_client(cluster):
    """`scheduler="tcp://..."` from a fresh interpreter: the same bug as the command's."""
    code = (
        "import sys, escalate\n"
        f"model = escalate.load({str(TUTORIAL)!r})\n"
        "there = escalate.simulate(model, 500_000, seed=4, scheduler=sys.argv[1]).to_json()\n"
        "here = escalate.simulate(model, 500_000, seed=4).to_json()\n"
        "import json; print(there == here, json.loads(there)['trajectories'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, cluster.address], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "500000"]


def _transitions(address: str) -> int:
    """How many task transitions the scheduler has made: asked by a Client opened and closed
    here, between commands (never while one runs)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def _cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@pytest.mark.slow
def test_a_worker_killed_mid_run_changes_nothing(cluster):
    args = ["run", VENEZUELA, "-n", "3e7", "--seed", "21", "--format", "json"]
    expected = escalate(*args)
    assert expected.returncode == 0, expected.stderr
    victim = cluster.worker_process(0)
    registered = cluster.registrations(0)
    idle = _cpu_seconds(victim)
    command = subprocess.Popen(
        [ESCALATE, *map(str, args), "--scheduler", cluster.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # mid-run: the victim has worked a second of CPU on this command's tasks
        wait_until(lambda: _cpu_seconds(victim) - idle > 1.0 or command.poll() is not None,
                   "the worker to take tasks", timeout=120)  # fmt: skip
        assert command.poll() is None, "the run ended before a worker could be killed"
        victim.send_signal(signal.SIGKILL)
        out, err = command.communicate(timeout=300)
    finally:
        if command.poll() is None:
            command.kill()
    assert not victim.is_running()
    assert command.returncode == 0, err
    assert err == ""
    assert out == expected.stdout
    cluster.wait_registered(0, times=registered + 1)  # its nanny brought it back


@pytest.mark.slow
def test_a_scheduler_lost_mid_run_is_one_line_and_exit_2(tmp_path):
    with DaskProcesses(tmp_path, workers=1) as lone:
        worker = lone.worker_process(0)
        idle = _cpu_seconds(worker)
        command = subprocess.Popen(
            [ESCALATE, "run", str(VENEZUELA), "-n", "3e7", "--seed", "1",
             "--out", str(tmp_path / "run"), "--scheduler", lone.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until(lambda: _cpu_seconds(worker) - idle > 1.0 or command.poll() is not None,
                       "the worker to take tasks", timeout=120)  # fmt: skip
            assert command.poll() is None, "the run ended before the scheduler could be killed"
            lone.scheduler.send_signal(signal.SIGKILL)
            _, err = command.communicate(timeout=120)
        finally:
            if command.poll() is None:
                command.kill()
    assert command.returncode == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "lost the connection to the Dask scheduler" in err
    assert not (tmp_path / "run").exists()


def test_an_unreachable_scheduler_fails_fast():
    # the 5 s connect timeout ends it: a hang would raise TimeoutExpired here
    result = escalate("run", TUTORIAL, "-n", "1e4", "--scheduler", "tcp://127.0.0.1:9", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --scheduler tcp://127.0.0.1:9: cannot reach")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("address", ["nonsense", "tcp://nohost.invalid:8786"])
def test_a_malformed_or_unknown_address_fails_at_once(address):
    result = escalate("run", TUTORIAL, "-n", "1e4", "--scheduler", address)
    assert result.returncode == 2 and "not a reachable scheduler address" in result.stderr
    assert result.stderr.startswith(f"error: --scheduler {address}: ")
    assert result.stderr.count("\n") == 1


def test_solve_needs_worlds_for_a_scheduler():
    result = escalate("solve", VENEZUELA, "--scheduler", "tcp://127.0.0.1:9")
    assert result.returncode == 2 and "--scheduler goes with --worlds" in result.stderr


def test_a_scheduler_without_workers_is_refused(tmp_path, monkeypatch):
    """Its tasks would wait for ever; the Python API (an address) says so after the timeout."""
    import escalate as api
    from escalate.engine import cluster as _dask
    from escalate.errors import EscalateError

    monkeypatch.setattr(_dask, "WORKER_TIMEOUT", 1.0)
    with DaskProcesses(tmp_path, workers=0) as empty:
        model = api.load(TUTORIAL)
        with pytest.raises(EscalateError, match="no Dask worker has joined it within 1 s"):
            api.simulate(model, 10_000, seed=1, scheduler=empty.address)


def test_calibrate_is_identical_on_the_cluster(cluster):
    targets = ROOT / "scenarios" / "forecasting" / "venezuela-targets.yaml"
    args = ("calibrate", VENEZUELA, targets, "--worlds", "120", "--seed", "4", "--format", "json")
    here = escalate(*args)
    there = escalate(*args, "--scheduler", cluster.address)
    assert here.returncode == 0, here.stderr
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout  # the same posterior, to the bit
    assert "Traceback" not in there.stderr and "distributed" not in there.stderr
    summary = json.loads(there.stdout)
    assert summary["worlds"] == 120 and summary["tempering_powers"]  # moves ran on the cluster


def test_compare_is_identical_on_the_cluster(cluster):
    """Paired Monte Carlo replicates and worlds as Dask tasks: the same figures, to the bit."""
    variants = ROOT / "scenarios" / "forecasting" / "venezuela-variants.yaml"
    for options, mode in (
        (("--engine", "monte-carlo", "-n", "40000", "--replicates", "4"), "replicates"),
        (("--worlds", "6"), "worlds"),
    ):
        args = ("compare", VENEZUELA, variants, *options, "--seed", "2", "--format", "json")
        here = escalate(*args)
        before = _transitions(cluster.address)
        there = escalate(*args, "--scheduler", cluster.address)
        assert _transitions(cluster.address) > before  # its tasks went through the scheduler
        assert here.returncode == 0, here.stderr
        assert there.returncode == 0, there.stderr
        assert there.stdout == here.stdout
        assert "Traceback" not in there.stderr and "distributed" not in there.stderr
        assert json.loads(there.stdout)["mode"] == mode


def test_nowcast_is_identical_on_the_cluster(cluster):
    """The forward algorithm and the forecasts of 600 worlds as two Dask tasks (512 and 88
    worlds, each with its own template world), through tempering and moves: the same JSON as
    in one process, to the bit."""
    observed = ROOT / "scenarios" / "forecasting" / "venezuela-observed.yaml"
    args = ("nowcast", VENEZUELA, observed, "--worlds", "600", "--seed", "5", "--format", "json")
    here = escalate(*args)
    before = _transitions(cluster.address)
    there = escalate(*args, "--scheduler", cluster.address)
    assert _transitions(cluster.address) > before
    assert here.returncode == 0, here.stderr
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert "Traceback" not in there.stderr and "distributed" not in there.stderr
    summary = json.loads(there.stdout)
    assert summary["worlds"] == 600 and summary["tempering_powers"]  # moves ran there too


def test_a_particle_nowcast_is_identical_on_the_cluster(cluster):
    """The Essequibo ladder (a log-normal delay: particles) as Dask tasks: each world's
    particles draw from its own generator, so the JSON is the one of one process."""
    scenario = ROOT / "scenarios" / "essequibo.yaml"
    observed = ROOT / "scenarios" / "forecasting" / "essequibo-observed.yaml"
    args = ("nowcast", scenario, observed, "--worlds", "80", "--seed", "2", "--format", "json")
    assert _same_here_and_there(cluster, *args, progress=True)["method"] == "particles"
