"""The Python API's ``scheduler=Client``: a LocalCluster on loopback, held by this process,
gives the local figures bit for bit and survives a worker lost mid-run. The command line's
``--scheduler`` is tested as users run it, in ``test_dask_cli.py``."""

from __future__ import annotations

import time

import pytest

import escalate

from ..conftest import ROOT

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
            dashboard_address=":0",  # any free port: a scheduler on 8787 is no clash
            host="127.0.0.1",
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, client


def test_a_client_gives_the_local_figures(cluster):
    _, client = cluster
    model = escalate.load(TUTORIAL)
    expected = escalate.simulate(model, 400_000, seed=3).to_json()  # four chunks
    assert escalate.simulate(model, 400_000, seed=3, scheduler=client).to_json() == expected


def test_a_precision_run_on_a_cluster_gives_the_local_figures(cluster):
    """The first batches of a precision run run here, the rest on the cluster: the same
    trajectories, and the same stop, as a local run."""
    _, client = cluster
    model = escalate.load(TUTORIAL)
    target = {"precision": 0.0015, "metric": "p_reached:war"}
    local = escalate.simulate(model, 1e7, seed=3, **target)
    assert local.trajectories > 131_072  # past the first chunk's worth: cluster batches ran
    assert escalate.simulate(model, 1e7, seed=3, scheduler=client, **target).to_json() == (
        local.to_json()
    )


@pytest.mark.slow
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
    from escalate.engine.cluster import share

    _, client = cluster
    shared = share(client, list(range(100)))
    assert client.submit(_sum, shared, 0, pure=False).result() == 4950
    deadline = time.monotonic() + 10
    while len(client.who_has([shared])[shared.key]) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    (holder,) = client.who_has([shared])[shared.key]
    client.restart_workers([holder])
    assert client.submit(_sum, shared, 1, pure=False).result(timeout=30) == 4951


def test_a_sweep_of_the_new_trigger_metrics_on_a_client_gives_the_local_figures(cluster):
    """Offsets, effects and a date metric, simulated point by point on the cluster."""
    from ..scenario.test_language import SWITCH, SWITCH_METRICS

    _, client = cluster
    model = escalate.loads(SWITCH)
    arguments = ({"chance_on": [0.2, 0.4]}, SWITCH_METRICS)
    options = {"n": 50_000, "seed": 5, "engine": "monte-carlo"}
    local = escalate.sweep(model, *arguments, **options)
    remote = escalate.sweep(model, *arguments, **options, scheduler=client)
    assert remote.frame.equals(local.frame)
