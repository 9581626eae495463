"""Figures and the HTML report: the axes, lines and labels a reader relies on; a report that
is well-formed, self-contained, and renders with every image in a headless browser."""

from __future__ import annotations

import html
import json
import math
import shutil
import subprocess
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

import escalate
from escalate.analysis.worlds import reach_across_worlds
from escalate.output import plots
from escalate.output.format import percent
from escalate.output.report import FIGURES

from ..conftest import ESCALATE, ROOT, SCENARIOS

VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"
TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"


@pytest.fixture(scope="module")
def model():
    return escalate.load(VENEZUELA)


@pytest.fixture(scope="module")
def result(model):
    return escalate.simulate(model, 100_000, seed=4)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_reach_curves_with_the_exact_overlay(model, result):
    stages = ["asset_seizure", "invasion", "full_scale_war"]
    fig = plots.reached(result, stages)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 and len(ax.collections) == 3  # lines and 95% bands
    assert ax.get_xlabel() == "time (days)" and ax.get_ylabel() == "probability reached by t"
    assert "venezuela" in ax.get_title()
    fig = plots.reached(result, stages, exact=escalate.solve(model))
    assert len(fig.axes[0].get_lines()) == 6
    assert "exact (solve)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_occupancy_stacks_every_stage(result):
    ax = plots.occupancy(result).axes[0]
    assert len(ax.collections) == len(result.stages)
    assert ax.get_ylabel() == "share of trajectories in stage"
    # hatches keep the stages apart in grey
    assert len({c.get_hatch() for c in ax.collections}) == len(result.stages)


def test_paths_bars_and_the_stage_graph(model, result):
    ax = plots.paths(result, top=8).axes[0]
    assert len(ax.patches) == 8
    assert ax.get_xlabel() == "share of trajectories (95% interval)"
    fig = plots.stage_graph(model)
    ax = fig.axes[0]
    texts = " ".join(" ".join(t.get_text().split()) for t in [*ax.texts, *fig.texts])
    for name in model.stages:
        assert model.label(name) in texts
    assert len(ax.patches) == len(model.transitions)  # one arrow per transition
    assert "Trigger effects" in texts and "×3 when venezuela_mobilizes is on" in texts


def test_fan_chart_across_worlds(model):
    times, values = reach_across_worlds(model, "full_scale_war", 12, seed=2, times=[0, 365, 730])
    assert values.shape == (12, 3) and np.all(values[:, 0] == 0)
    assert np.all(np.diff(values, axis=1) >= -1e-12)  # reach curves never decrease
    fig = plots.fan(times, values, scenario="venezuela", stage="full_scale_war", time_unit="day")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 2
    assert ax.get_title() == "venezuela: P(full_scale_war reached by t) across 12 worlds"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from click.testing import CliRunner

    from escalate.cli import main

    folder = tmp_path_factory.mktemp("run") / "run"
    runner = CliRunner()
    args = ["run", str(VENEZUELA), "-n", "1e5", "--seed", "3", "--out", str(folder)]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.stderr
    for name in FIGURES:
        assert (folder / f"{name}.png").exists() and (folder / f"{name}.svg").exists()
    done = runner.invoke(main, ["report", str(folder)])
    assert done.exit_code == 0, done.stderr
    return folder / "report.html"


def test_report_is_well_formed_and_self_contained(report, model):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    root = ET.fromstring(text.split("\n", 1)[1])  # the markup is also well-formed XML
    images = root.findall(".//img")
    assert len(images) == len(FIGURES)
    assert all(img.get("src").startswith("data:image/png;base64,") for img in images)
    assert "http://" not in text and "https://" not in text  # nothing fetched from a network
    summary = root.find(".//table[@id='summary']")
    labels = [row.find("td").text for row in summary.find("tbody")]
    assert labels == [model.label(name) for name in model.stages]
    assert "Analytical illustration, not a forecast" in text
    assert "mobilization_onset_mean" in text  # the parameters and their sources


def test_report_of_a_missing_folder_is_a_clear_error(cli, tmp_path):
    result = cli("report", tmp_path / "nope")
    assert result.exit_code == 2 and "no such run folder" in result.stderr
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "not a run folder" in result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'a'}", "--virtual-time-budget=10000",
         "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert '<table id="summary"' in dom and "Full-scale war" in dom
    assert f'data-images="{len(FIGURES)}/{len(FIGURES)}"' in dom  # every image decoded
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'b'}", "--window-size=1200,2400",
         f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = plt.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not a blank page
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.01  # dark text and lines are drawn


def test_the_report_and_the_table_open_with_the_answer(report, model, result):
    """The headline stage's odds by the horizon, its interval and median date, and the odds
    by each year's end, before anything else on the page and first in `run`'s table."""
    body = report.read_text(encoding="utf-8").split("<body>", 1)[1]
    headline = body.index("id='headline'")
    assert headline < body.index("<table") and headline < body.index("<img")
    assert "P(Full-scale war by 2027-11-07) = " in body[headline : headline + 200]
    answer = result.headline()
    assert answer["stage"] == "full_scale_war"
    assert answer["p_reached"] == result.stages["full_scale_war"].p_reached
    assert list(answer["by_date"]) == ["2025-12-31", "2026-12-31"]
    reached = answer["by_date"]["2026-12-31"]
    assert reached == result.metric("p_reached:full_scale_war@2026-12-31")[0]
    assert 0 < answer["by_date"]["2025-12-31"] < reached < answer["p_reached"]
    exact = escalate.solve(model).headline()
    assert abs(exact["p_reached"] - answer["p_reached"]) < 4 * math.sqrt(
        exact["p_reached"] * (1 - exact["p_reached"]) / 100_000
    )
    for day, p in exact["by_date"].items():  # each year's end too, within 4 SE
        assert abs(answer["by_date"][day] - p) < 4 * math.sqrt(p * (1 - p) / 100_000), day
    done = subprocess.run(
        [ESCALATE, "solve", VENEZUELA], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[1].startswith(
        f"P(Full-scale war by 2027-11-07) = {exact['p_reached']:.1%} (exact)"
    )
    ran = subprocess.run([ESCALATE, "run", VENEZUELA, "-n", "1e5", "--seed", "4"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout.splitlines()[1].startswith(  # the same run as `result`, same answer
        f"P(Full-scale war by 2027-11-07) = {answer['p_reached']:.1%} (95% interval "
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_the_stage_graph_is_legible(path):
    """Every piece of type at 9 pt or more on a figure the report shows unscaled (at most
    8.8 in at 120 dpi: 1,056 px, the page's width), and, as drawn, no label overlapping
    another label or a stage, and no arrow (its head included) inside a stage's box."""
    model = escalate.load(path)
    fig = plots.stage_graph(model)
    assert fig.get_size_inches()[0] <= 8.8
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [*ax.texts, *fig.texts]
    assert all(t.get_fontsize() >= 9 for t in texts)
    labels = [t for t in ax.texts if t.get_text().strip()]
    assert len(labels) == len(model.stages) + len(model.transitions)

    def drawn(t):
        patch = t.get_bbox_patch()
        return (patch if patch is not None else t).get_window_extent(renderer)

    boxes = [drawn(t) for t in labels] + [t.get_window_extent(renderer) for t in fig.texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    fig.set_dpi(120)  # as the run folder saves it: the arrows are clipped at any resolution
    fig.canvas.draw()
    stages = [t.get_bbox_patch().get_window_extent(renderer).padded(-1.0) for t in labels
              if t.get_bbox_patch().get_boxstyle().__class__.__name__ == "Round"]  # fmt: skip
    assert len(stages) == len(model.stages)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(model.transitions)
    for arrow in arrows:
        for polygon in arrow.get_path().to_polygons(closed_only=False):
            points = ax.transData.transform(polygon)
            for stage in stages:
                inside = (
                    (points[:, 0] > stage.x0) & (points[:, 0] < stage.x1)
                    & (points[:, 1] > stage.y0) & (points[:, 1] < stage.y1)
                )  # fmt: skip
                assert not inside.any(), (path.name, stage)


WORLDS = 30  # enough for a table of drivers: 6 worlds at each end


@pytest.fixture(scope="module")
def drivers_folder(tmp_path_factory):
    """The installed commands as a user chains them: a run across worlds written to a folder,
    a tornado written inside it (and a hidden folder, a malformed result and another
    horizon's tornado beside it, as a user's folder may hold), then the report."""
    folder = tmp_path_factory.mktemp("drivers") / "worlds"
    run = [ESCALATE, "run", VENEZUELA, "--worlds", str(WORLDS), "-n", "2000", "--seed", "2"]
    subprocess.run([*run, "--out", folder], capture_output=True, check=True)
    sensitivity = [ESCALATE, "sensitivity", VENEZUELA, "--method", "oat"]
    subprocess.run([*sensitivity, "--out", folder / "tornado"], capture_output=True, check=True)
    (folder / ".half-written").mkdir()
    shutil.copy(folder / "tornado" / "sensitivity.json", folder / ".half-written")
    (folder / "broken").mkdir()
    (folder / "broken" / "sensitivity.json").write_text("[1, 2]", encoding="utf-8")
    other = json.loads((folder / "tornado" / "sensitivity.json").read_text())
    (folder / "other").mkdir()
    other["horizon"] = 365.0
    (folder / "other" / "sensitivity.json").write_text(json.dumps(other), encoding="utf-8")
    done = subprocess.run([ESCALATE, "report", folder], capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return folder, run


def test_the_report_says_what_drives_the_answer(drivers_folder, tmp_path):
    """The headline names what moves the answer across the worlds and in the tornado (not in
    the hidden, malformed or other-horizon results); the worlds file reads back."""
    folder, run = drivers_folder
    for name in ("world_metrics.parquet", "worlds.parquet", "drivers.png", "stages.png"):
        assert (folder / name).exists(), name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["worlds"] == WORLDS and manifest["trajectories"] == WORLDS * 2000
    assert manifest["scenario_sha256"] == escalate.load(VENEZUELA).sha256
    worlds_file = ["--worlds-from", folder / "worlds.parquet"]
    reread = subprocess.run([*run[:3], "-n", "2000", "--seed", "2", *worlds_file],
                            capture_output=True, text=True)  # fmt: skip
    assert reread.returncode == 0 and f"Across {WORLDS} weighted worlds" in reread.stdout
    as_json = subprocess.run([*run[:3], "-n", "2000", "--seed", "2", *worlds_file, "--format",
                              "json"], capture_output=True, text=True, check=True)  # fmt: skip
    summary = json.loads((folder / "summary.json").read_text())
    again = json.loads(as_json.stdout)["headline"]["across_worlds"]
    for key, value in summary["headline"]["across_worlds"].items():  # the same worlds, seeds
        assert again[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    refused = subprocess.run(
        [*run[:3], *worlds_file, "--out", tmp_path / "x"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--worlds-from does not combine with --out" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "x").exists()
    metric = summary["worlds"]["drivers"]["metric"]
    first = next(iter(summary["worlds"]["drivers"]["parameters"]))
    tornado = json.loads((folder / "tornado" / "sensitivity.json").read_text())
    assert metric == tornado["metric"] == "p_reached:full_scale_war"
    assert tornado["scenario_sha256"] == manifest["scenario_sha256"]
    text = (folder / "report.html").read_text(encoding="utf-8")
    headline = html.unescape(text.split("id='headline'>", 1)[1].split("</p>", 1)[0])
    assert headline.startswith("P(Full-scale war by 2027-11-07) = ")
    # each of the headline's three figures says which it is: pooled, across worlds, tornado
    assert f"(the {WORLDS} worlds pooled, their parameters' uncertainty averaged in; " in headline
    base = percent(next(iter(tornado["parameters"].values()))["base"])
    assert f"the others at their point values, where it is {base})." in headline
    assert f"Across {WORLDS} worlds, P(Full-scale war by 2027-11-07) runs from" in headline
    assert headline.count("Sensitivity (") == 1  # not the hidden, broken or other-horizon ones
    assert "Sensitivity (oat, tornado/): p_reached:full_scale_war moves most with " in headline
    assert f"with {next(iter(tornado['parameters']))} (" in headline
    section = text.split("id='what-drives-it'", 1)[1]
    assert section.index(f"<td class='text'>{first}</td>") < section.index("Sensitivity: oat")
    assert "nan" not in section.split("<figure>", 1)[0].lower()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_drivers_report_renders_every_image(drivers_folder, tmp_path):
    folder, _ = drivers_folder
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'a'}", "--virtual-time-budget=10000",
         "--dump-dom", (folder / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    images = len(FIGURES) + 2  # and the drivers figure and the tornado
    assert f'data-images="{images}/{images}"' in dom
