"""`escalate run`: reproducibility across threads, the run folder, interruption, --precision."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import escalate
from escalate.output import plots

from ..conftest import ESCALATE, ROOT, OnATerminal

TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"
RUN_FILES = {
    "summary.json",
    "stages.csv",
    "curves.parquet",
    "paths.csv",
    "manifest.json",
    "reached.png",
    "paths.png",
    "paths.svg",
    "stages.png",
    "stages.svg",
    "reached.svg",
    "occupancy.png",
    "occupancy.svg",
}


def test_same_seed_same_json_on_one_and_two_threads(cli):
    one = cli("run", TUTORIAL, "-n", "3e5", "--seed", "5", "--threads", "1", "--format", "json")
    two = cli("run", TUTORIAL, "-n", "3e5", "--seed", "5", "--threads", "2", "--format", "json")
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert one.stdout == two.stdout
    other_seed = cli("run", TUTORIAL, "-n", "3e5", "--seed", "6", "--format", "json")
    assert other_seed.stdout != one.stdout


def test_json_has_the_summary_structure(cli):
    result = cli("run", TUTORIAL, "-n", "1e4", "--seed", "1", "--format", "json")
    summary = json.loads(result.stdout)
    assert summary["method"] == "monte-carlo"
    assert summary["trajectories"] == 10_000 and summary["seed"] == 1
    assert summary["horizon"] == 365 and summary["time_unit"] == "day"
    war = summary["stages"]["war"]
    for key in ("p_reached", "p_reached_se", "p_reached_ci", "p_at_horizon", "time_in"):
        assert key in war
    assert set(war["time_to_reach"]) >= {"mean", "p10", "p50", "p90"}
    assert set(summary["triggers"]["buildup"]) >= {"p_fired", "p_fired_se"}
    assert summary["paths"][0]["path"][0] in ("talks", "standoff")


def test_trajectory_counts_accept_scientific_and_underscores(cli):
    a = cli("run", TUTORIAL, "-n", "2e4", "--seed", "3", "--format", "json").stdout
    b = cli("run", TUTORIAL, "-n", "20_000", "--seed", "3", "--format", "json").stdout
    assert a == b
    bad = cli("run", TUTORIAL, "-n", "2.5")
    assert bad.exit_code == 2 and "whole number" in bad.stderr


def test_table_output(cli):
    result = cli("run", TUTORIAL, "-n", "1e4", "--seed", "1")
    assert result.exit_code == 0
    for text in ("Stages", "P(reached)", "Triggers", "Most frequent pathways", "Open war"):
        assert text in result.stdout


def test_set_changes_the_answer(cli):
    base = json.loads(cli("run", TUTORIAL, "-n", "5e4", "--seed", "2", "--format", "json").stdout)
    faster = json.loads(
        cli(
            "run",
            TUTORIAL,
            "-n",
            "5e4",
            "--seed",
            "2",
            "--format",
            "json",
            "--set",
            "talks_mean=10",
        ).stdout
    )
    assert faster["stages"]["standoff"]["p_reached"] > base["stages"]["standoff"]["p_reached"]


def test_run_folder_holds_every_file(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", TUTORIAL, "-n", "2e4", "--seed", "4", "--out", out)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == RUN_FILES
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["trajectories"] == 20_000
    assert manifest["scenario_sha256"] == escalate.load(TUTORIAL).sha256
    assert manifest["parameters"]["talks_mean"] == 60
    assert {"numpy", "numba", "escalate"} <= set(manifest["versions"])
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns) == ["t", "date", "stage", "curve", "value"]  # a start_date
    assert len(curves) == 2 * 5 * 366
    assert str(curves.date.max().date()) == summary["horizon_date"]
    stages = pd.read_csv(out / "stages.csv", index_col="stage")
    assert stages.loc["war", "p_reached"] == pytest.approx(summary["stages"]["war"]["p_reached"])
    assert len(pd.read_csv(out / "paths.csv")) == len(summary["paths"])


def test_existing_folder_needs_force(cli, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = cli("run", TUTORIAL, "-n", "1e4", "--out", out)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    replaced = cli("run", TUTORIAL, "-n", "1e4", "--out", out, "--force")
    assert replaced.exit_code == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_failure_while_writing_leaves_no_folder(cli, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "save_run_figures", interrupted)
    result = cli("run", TUTORIAL, "-n", "1e4", "--out", tmp_path / "run")
    assert result.exit_code == 130
    assert "nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_mid_run_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    command = [ESCALATE, "run", str(TUTORIAL), "-n", "1e9"]
    terminal = OnATerminal([*command, "--out", str(out)])
    terminal.wait_for(rb"[1-9]\d*%")  # the progress bar moved: the run is under way
    terminal.process.send_signal(signal.SIGINT)
    shown = terminal.finish()
    assert terminal.process.returncode == 130, shown
    assert "Traceback" not in shown and "nothing was written" in shown
    assert list(tmp_path.iterdir()) == []


def test_precision_stops_when_the_interval_is_narrow_enough(cli):
    args = ("run", TUTORIAL, "-n", "1e7", "--seed", "9", "--format", "json")
    args += ("--precision", "0.004", "--metric", "p_reached:war")
    one = cli(*args, "--threads", "1")
    two = cli(*args, "--threads", "2")
    assert one.exit_code == 0, one.output
    assert one.stdout == two.stdout
    summary = json.loads(one.stdout)
    war, n = summary["stages"]["war"], summary["trajectories"]
    # batches double from 1,024: the run stops within 2x of the trajectories the target
    # needs, p (1 - p) (1.96 / 0.004)^2 at the p it found
    needed = war["p_reached"] * (1 - war["p_reached"]) * (1.959964 / 0.004) ** 2
    assert needed <= n <= 2 * needed, (n, needed)
    lo, hi = war["p_reached_ci"]
    assert (hi - lo) / 2 <= 0.004 * 1.001
    reached = summary["precision"]
    assert reached["target"] == 0.004 and reached["met"] and reached["reached"] <= 0.004
    assert reached["reached"] == pytest.approx(1.959964 * war["p_reached_se"], rel=1e-6)
    assert f"95% interval ±{reached['reached']:.3g} after {n:,} trajectories" in one.stderr
    # a cap reached first says so, in the summary and on stderr
    capped = cli("run", TUTORIAL, "-n", "3000", "--seed", "9", "--format", "json",
                 "--precision", "0.004", "--metric", "p_reached:war")  # fmt: skip
    assert capped.exit_code == 0 and json.loads(capped.stdout)["trajectories"] == 3000
    assert json.loads(capped.stdout)["precision"]["met"] is False
    assert "not met: -n 3,000 ran out first" in capped.stderr


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("p_reached:peace", "unknown stage 'peace'"),
        ("p_fired:war", "unknown trigger 'war'"),
        ("time_to_reach:war", "takes :p10"),
        ("reach:war", "expected p_reached"),
    ],
)
def test_bad_metric(cli, metric, message):
    result = cli("run", TUTORIAL, "-n", "1e4", "--precision", "0.01", "--metric", metric)
    assert result.exit_code == 2
    assert message in result.stderr


def test_python_api_returns_a_result():
    result = escalate.simulate(TUTORIAL, n=10_000, seed=1)
    frame = result.summary()
    assert list(frame.index) == ["talks", "standoff", "clash", "war", "accord"]
    assert frame.loc["talks", "p_reached"] > 0.99
    assert result.metric("p_reached:war@365")[0] == pytest.approx(result.stages["war"].p_reached)
    fig = result.plot_reached()
    assert fig.axes[0].get_xlabel() == "time (days)"
    assert len(fig.axes[0].get_lines()) == len(result.stages)
    plt.close(fig)


def test_compact_path():
    from escalate.output.format import compact_path

    cycle = ["talks", "standoff"] * 4 + ["war"]
    assert compact_path(cycle) == "(talks → standoff) ×4 → war"
    assert compact_path(["a", "b", "a", "b", "c"]) == "a → b → a → b → c"
    assert compact_path(["a", "a", "a", "b"]) == "(a) ×3 → b"


def test_run_folder_without_the_exact_overlay_when_solve_refuses(cli, scenario_file, tmp_path):
    # memoryless, but its fastest exit makes ~7e7 expected jumps: solve refuses, run does not
    path = scenario_file(
        "scenario: stiff\nhorizon: 730\nstart: a\nstages:\n  a: {}\n  b: {terminal: true}\n"
        "transitions:\n  - {from: a, to: b, rate: 1e5}\n"
    )
    assert cli("solve", path).exit_code == 2
    result = cli("run", path, "-n", "1e4", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "reached.png").exists()


def test_a_precision_run_s_first_batch_is_chunk_zero_s_first_trajectories():
    """A target met after the first batch: the run is the first 1,024 trajectories of chunk 0,
    the same figures, bit for bit, as a plain run of 1,024; a Dask-free, thread-free fact the
    reproducibility of every precision run rests on (each batch is a prefix of its chunk)."""
    loose = escalate.simulate(TUTORIAL, 1e6, seed=4, precision=0.2, metric="p_reached:war")
    plain = escalate.simulate(TUTORIAL, 1024, seed=4)
    assert loose.trajectories == 1024
    assert loose.summary().equals(plain.summary())
    assert loose.paths == plain.paths


def test_a_metric_after_the_horizon_is_refused_not_read_at_the_horizon(cli):
    """p_reached:war@T with T after the horizon: the curves stop at the horizon, so reading
    their last point would answer "by the horizon" under another name. Refused, with the
    horizon that would reach it; at the horizon itself it is P(reached)."""
    solved = escalate.solve(ROOT / "scenarios" / "venezuela.yaml")
    at_end, _ = solved.metric("p_reached:full_scale_war@730")
    assert at_end == solved.stages["full_scale_war"].p_reached
    with pytest.raises(escalate.EscalateError, match=r"2027-11-08 is after the horizon"):
        solved.metric("p_reached:full_scale_war@731")
    refused = cli("run", TUTORIAL, "--precision", "0.01", "--metric", "p_reached:war@2030-01-01")
    assert refused.exit_code == 2
    assert "a --horizon of at least 2030-01-01 reaches it" in refused.stderr


@pytest.mark.parametrize("command", ["solve", "run"])
def test_an_80_column_terminal_keeps_every_stage_label_whole(command):
    """In 80 columns the stage table splits in two (the odds, then the timing), each table
    fits, no value is cut short and every word of every stage label shows whole."""
    import os

    scenario = ROOT / "scenarios" / "venezuela.yaml"
    done = subprocess.run(
        [ESCALATE, command, scenario, *(["-n", "1e5", "--seed", "1"] if command == "run" else [])],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tables = [line for line in done.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and max(len(line) for line in tables) <= 80
    assert "…" not in done.stdout
    model = escalate.load(scenario)
    for stage in model.stages:
        for word in model.label(stage).split():
            assert re.search(rf"(^|[\s│(]){re.escape(word)}([\s│)]|$)", done.stdout, re.M), word
    assert "Time to reach (days)" in done.stdout


def test_the_reach_figure_draws_every_stage_apart():
    """Nine stages, nine different lines (colour and dash), the legend outside the axes (over
    no curve), and the start stage's line at 1 inside the frame, not on its edge."""
    from matplotlib.colors import to_hex

    result = escalate.solve(ROOT / "scenarios" / "venezuela.yaml")
    fig = result.plot_reached()
    ax = fig.axes[0]
    lines = ax.get_lines()[: len(result.stages)]
    styles = {(to_hex(line.get_color()), line.get_linestyle()) for line in lines}
    assert len(lines) == len(styles) == 9
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend.x0 >= ax.get_window_extent(fig.canvas.get_renderer()).x1
    assert ax.get_ylim()[1] > 1.0
    plt.close(fig)


def test_a_precision_run_reports_its_progress_against_the_cap():
    """Its batches double, and each reports the trajectories done out of the cap (-n), never
    out of the chunk numbering behind the first batches."""
    seen = []
    result = escalate.simulate(TUTORIAL, 1e6, seed=1, precision=0.0015, metric="p_reached:war",
                               progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert [done for done, _ in seen] == [1024 * 2**k for k in range(9)]
    assert {total for _, total in seen} == {1_000_000} and result.trajectories == 262_144
