"""Scale-out on Dask: a LocalCluster on loopback gives the local figures bit for bit, survives
a worker lost mid-run, and an unreachable scheduler fails fast with exit 2."""

from __future__ import annotations

import json
import time

import pytest

import escalate

from .conftest import ROOT

distributed = pytest.importorskip("distributed")

TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"  # has non-exponential delays: simulated
VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, client


def test_run_is_identical_on_the_cluster(cli, cluster):
    local, _ = cluster
    args = ["run", TUTORIAL, "-n", "2.5e6", "--seed", "7", "--format", "json"]
    here = cli(*args)
    there = cli(*args, "--scheduler", local.scheduler_address)
    assert here.exit_code == 0 and there.exit_code == 0, there.stderr
    assert json.loads(here.stdout)["trajectories"] == 2_500_000
    assert here.stdout == there.stdout


def test_solve_worlds_are_identical_on_the_cluster(cli, cluster):
    local, _ = cluster
    args = ["solve", VENEZUELA, "--worlds", "40", "--seed", "3", "--format", "json"]
    here = cli(*args)
    there = cli(*args, "--scheduler", local.scheduler_address)
    assert there.exit_code == 0, there.stderr
    assert here.stdout == there.stdout


def test_sweep_is_identical_on_the_cluster(cli, cluster):
    local, _ = cluster
    args = [
        "sweep", TUTORIAL, "--vary", "talks_mean=30:120:4", "--metric", "p_reached:war",
        "-n", "2e5", "--seed", "5", "--format", "json",
    ]  # fmt: skip
    here = cli(*args)
    there = cli(*args, "--scheduler", local.scheduler_address)
    assert there.exit_code == 0, there.stderr
    assert here.stdout == there.stdout


def test_a_worker_lost_mid_run_changes_nothing(cluster):
    _, client = cluster
    model = escalate.load(TUTORIAL)
    expected = escalate.simulate(model, 6_000_000, seed=11).to_json()
    before = set(client.scheduler_info()["workers"])
    restarted = []

    def kill_one_worker(done, total):
        if not restarted:  # the first batch is in: restart a worker while others run
            victim = sorted(client.scheduler_info()["workers"])[0]
            client.restart_workers([victim])
            restarted.append(victim)

    result = escalate.simulate(
        model, 6_000_000, seed=11, scheduler=client, progress=kill_one_worker
    )
    assert restarted and set(client.scheduler_info()["workers"]) != before
    assert result.to_json() == expected


def _sum(values, extra):
    return sum(values) + extra


def test_a_shared_model_survives_the_loss_of_its_only_copy(cluster):
    """Dask's active memory manager soon keeps one replica of a key; the worker holding the
    shared model is then restarted. A scattered value would be lost with it (and every task
    that needs it cancelled); a shared one is recomputed."""
    from escalate._dask import share

    _, client = cluster
    shared = share(client, list(range(100)))
    assert client.submit(_sum, shared, 0, pure=False).result() == 4950
    deadline = time.monotonic() + 10
    while len(client.who_has([shared])[shared.key]) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    (holder,) = client.who_has([shared])[shared.key]
    client.restart_workers([holder])
    assert client.submit(_sum, shared, 1, pure=False).result(timeout=30) == 4951


def test_an_unreachable_scheduler_fails_fast(cli):
    began = time.monotonic()
    result = cli("run", TUTORIAL, "-n", "1e4", "--scheduler", "tcp://127.0.0.1:9")
    assert time.monotonic() - began < 10
    assert result.exit_code == 2
    assert "cannot reach a Dask scheduler" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("address", ["nonsense", "tcp://nohost.invalid:8786"])
def test_a_malformed_or_unknown_address_fails_at_once(cli, address):
    result = cli("run", TUTORIAL, "-n", "1e4", "--scheduler", address)
    assert result.exit_code == 2 and "not a reachable scheduler address" in result.stderr


def test_solve_needs_worlds_for_a_scheduler(cli):
    result = cli("solve", VENEZUELA, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and "--scheduler goes with --worlds" in result.stderr
