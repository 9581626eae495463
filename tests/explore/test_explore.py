"""The explorer: its controls and settings, the notebook widget (no browser), and the page
served by the installed ``escalate explore``, driven in headless Chromium."""

from __future__ import annotations

import re
import signal
import socket

import numpy as np
import pytest

pytest.importorskip("panel")

import escalate
from escalate.api import simulate, solve
from escalate.explore import Explorable, Explorer
from escalate.forecast.variants import with_triggers
from escalate.scenario import load
from escalate.scenario.params import read_params
from tests.conftest import ESCALATE, ROOT, OnATerminal

VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"
TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"


@pytest.fixture(scope="module")
def venezuela():
    return Explorable(load(VENEZUELA))


FIXED = """
scenario: fixed
stages: {calm: {}, war: {terminal: true}, peace: {terminal: true}}
start: calm
horizon: 100
parameters:
  war_mean: {value: 200}
  peace_chance: {value: 0.5}
transitions:
  - {from: calm, to: war, mean: war_mean}
  - {from: calm, to: peace, chance: peace_chance, within: 30}
"""


def test_each_slider_spans_the_uncertain_5_to_95_range_or_a_quarter_to_four_times(
    venezuela, scenario_file
):
    model = venezuela.model
    control = venezuela.controls["war_mean"]
    dist = model.parameters["war_mean"].uncertain
    low, high = dist.scipy(dist.numbers()).ppf([0.05, 0.95])
    assert control.low <= low < control.low + control.step
    assert control.high - control.step < high <= control.high
    assert control.unit == "days" and "Ground invasion → Full-scale war" in control.label
    assert control.source == model.parameters["war_mean"].source
    chance = venezuela.controls["direct_war_chance"]
    assert chance.unit == "probability" and 0 < chance.low < chance.high < 1
    fixed = Explorable(load(scenario_file(FIXED))).controls
    assert (fixed["war_mean"].low, fixed["war_mean"].high) == (50, 800)
    assert (
        fixed["war_mean"].unit == "days"
        and "a quarter to four times" in fixed["war_mean"].range_note
    )
    peace = fixed["peace_chance"]  # four times 0.5 is no probability: the range stops short of 1
    assert peace.low == 0.125 and 0.999 < peace.high < 1 and peace.unit == "probability"


def test_a_query_sets_what_it_can_and_explains_the_rest(venezuela):
    settings = venezuela.from_query(
        {"war_mean": "50", "horizon": "365", "venezuela_mobilizes": "on", "seizure_mean": "-3",
         "war_mena": "5", "direct_war_chance": "1.5", "horizon2": "x", "invasion_mean": "abc"}
    )  # fmt: skip
    assert settings.values["war_mean"] == 50 and settings.horizon == 365
    assert settings.triggers["venezuela_mobilizes"] == "on"
    assert settings.values["seizure_mean"] == venezuela.default.values["seizure_mean"]
    assert settings.values["direct_war_chance"] == venezuela.default.values["direct_war_chance"]
    notes = "\n".join(settings.messages)
    assert "seizure_mean=-3: must be positive; ignored" in notes
    assert "direct_war_chance=1.5: must be" in notes
    assert "war_mena: no parameter or trigger of 'venezuela' has this name" in notes
    assert "did you mean 'war_mean'" in notes
    assert "invasion_mean=abc: 'abc' is not a number" in notes
    assert len(settings.messages) == 5
    assert venezuela.to_query(settings) == {
        "war_mean": "50", "venezuela_mobilizes": "on", "horizon": "365"
    }  # fmt: skip


def test_the_export_is_a_params_file_that_solve_reads(venezuela, tmp_path, cli):
    settings = venezuela.from_query({"war_mean": "50", "capture_mean": "12.5"})
    path = tmp_path / "params.yaml"
    path.write_text(venezuela.params_file(settings), encoding="utf-8")
    values = read_params(path, venezuela.model)
    assert values == settings.values
    shown = cli("solve", VENEZUELA, "--params", path)
    expected = solve(VENEZUELA, overrides={"war_mean": 50, "capture_mean": 12.5})
    assert shown.exit_code == 0 and expected.headline_text() in " ".join(shown.stdout.split())


def test_the_notebook_widget_is_built_and_follows_its_controls(venezuela):
    """What a notebook cell shows (the Bokeh model Panel builds), updated as a user moves a
    control; every figure is the exact solver's at the same settings."""
    import panel as pn

    view = escalate.explore(VENEZUELA)
    assert isinstance(view, Explorer)
    from bokeh.models import Slider

    root = pn.panel(view).get_root()  # the model a notebook displays
    sliders = list(root.select({"type": Slider}))
    assert len(sliders) == len(view.sliders) + 1  # and the horizon
    as_written = solve(VENEZUELA)
    assert view.headline_text == as_written.headline_text()
    # the view's curves: solve's at its coarser grid's times (whole days and each Dec 31)
    times, _, reached = view.result.curve_arrays[:3]
    every_day, _, solved = as_written.curve_arrays[:3]
    assert len(times) < len(every_day)
    at = np.searchsorted(every_day, times)
    assert np.array_equal(every_day[at], times)
    assert np.allclose(reached, solved[:, at], rtol=0, atol=1e-12)
    for name, stage in as_written.stages.items():  # the table's figures, quantiles included
        mine = view.result.stages[name]
        assert mine.p_at_horizon == pytest.approx(stage.p_at_horizon, abs=1e-12)
        for key, value in stage.time_to_reach.items():
            assert mine.time_to_reach[key] == pytest.approx(value, abs=1e-8), (name, key)

    view.set(war_mean=50, horizon=365)
    expected = solve(VENEZUELA, overrides={"war_mean": 50}, horizon=365)
    assert view.headline_text == expected.headline_text()
    assert view.settings_query == {"war_mean": "50", "horizon": "365"}
    war = expected.stages["full_scale_war"].p_reached
    table = {row["stage"]: row for row in view.rows}
    assert table["Full-scale war"]["P(reached by the horizon)"] == f"{war:.1%}"
    assert "<td>Full-scale war</td>" in view.table.object
    curve = view._curves.data["full_scale_war"]
    assert curve[-1] == pytest.approx(war, abs=1e-6)  # drawn to 1e-6

    view.sliders["invasion_mean"].value = 150.0  # as a slider moved in the notebook
    expected = solve(VENEZUELA, overrides={"war_mean": 50, "invasion_mean": 150}, horizon=365)
    assert view.headline_text == expected.headline_text()

    view.set(venezuela_mobilizes="on")
    mobilized = with_triggers(load(VENEZUELA), {"venezuela_mobilizes": {"initial": 1.0}})
    expected = solve(mobilized, overrides={"war_mean": 50, "invasion_mean": 150}, horizon=365)
    assert view.headline_text == expected.headline_text()

    view.reset()
    assert view.headline_text == solve(VENEZUELA).headline_text()
    assert view.settings_query == {}


def test_a_scenario_with_delays_is_a_fixed_seed_run_with_its_interval():
    view = escalate.explore(TUTORIAL, horizon=200)
    n = view.explorable.trajectories
    assert 4_000 <= n <= 200_000
    run = simulate(TUTORIAL, n=n, seed=1, horizon=200)
    assert view.headline_text == run.headline_text() and "95% interval" in run.headline_text()
    assert f"{n:,} trajectories, seed 1" in view.method.object
    before = view.headline_text
    name = next(iter(view.sliders))
    view.set(**{name: view.sliders[name].end})
    assert view.headline_text != before  # the same seed, another parameter value


def test_explore_in_a_notebook_refuses_a_setting_it_cannot_take():
    with pytest.raises(escalate.EscalateError, match="war_mean=-1: must be positive"):
        escalate.explore(VENEZUELA, war_mean=-1)


def test_a_scenario_that_does_not_validate_is_refused_before_serving(scenario_file):
    import subprocess

    bad = scenario_file("scenario: x\nstages: {a: {}}\nstart: b\nhorizon: 10\n")
    done = subprocess.run([ESCALATE, "explore", bad], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert re.search(rf"{re.escape(str(bad))}:\d+:\d+: ", done.stderr)
    assert "Traceback" not in done.stderr


# --- the page, in headless Chromium ---------------------------------------------------------

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """``escalate explore`` on the shipped scenario, as the README starts it; its URL."""
    server = OnATerminal([ESCALATE, "explore", str(VENEZUELA), "--port", str(_free_port())])
    server.wait_for(rb"escalate explorer: http://127\.0\.0\.1:\d+/")
    url = re.search(rb"http://127\.0\.0\.1:\d+/", server.seen).group().decode()
    yield url, server
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        server.finish()


@pytest.fixture(scope="module")
def browser():
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    hosts = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    page.goto(url)
    headline = page.locator(".escalate-headline >> text=P(")
    headline.wait_for(timeout=60_000)
    return page, headline, hosts


def _solve_headline(*args: str) -> str:
    import subprocess

    done = subprocess.run([ESCALATE, "solve", str(VENEZUELA), *args], capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    return next(line for line in done.stdout.splitlines() if line.startswith("P("))


def test_the_page_opens_at_its_url_follows_the_keyboard_and_exports(served, browser, tmp_path):
    """One page, as a user goes: opened at a shared URL (the headline `solve --set` prints),
    a slider moved with the keyboard (the headline and the URL follow), then exported."""
    from playwright.sync_api import expect

    url, _ = served
    page, headline, hosts = _open(browser, url + "?war_mean=50&horizon=365")
    expected = _solve_headline("--set", "war_mean=50", "--horizon", "365")
    assert headline.inner_text() == expected

    handle = page.locator(".noUi-handle").nth(3)  # horizon, seizure_mean, invasion_mean, war_mean
    assert handle.get_attribute("aria-valuenow").startswith("50")
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(
        "() => window.location.search === '?war_mean=51&horizon=365'", timeout=30_000
    )
    expect(headline).not_to_have_text(expected, timeout=30_000)
    moved = solve(VENEZUELA, overrides={"war_mean": 51}, horizon=365)
    assert headline.inner_text() == moved.headline_text()

    with page.expect_download(timeout=30_000) as download:
        page.get_by_text("Export as --params file").click()
    path = tmp_path / "exported.yaml"
    download.value.save_as(path)
    values = read_params(path, load(VENEZUELA))
    assert values["war_mean"] == 51 and values["seizure_mean"] == 360
    assert hosts == {url.split("/")[2]}  # nothing from beyond its own server
    page.close()


def test_an_out_of_domain_value_in_the_url_is_shown_and_ignored(served, browser):
    url, _ = served
    page, headline, _ = _open(browser, url + "?war_mean=-5&horizon=365&nonsense=1")
    message = page.locator(".escalate-messages >> text=war_mean=-5")
    message.wait_for(timeout=30_000)
    assert "must be positive; ignored" in message.inner_text()
    assert "nonsense: no parameter or trigger" in message.inner_text()
    assert headline.inner_text() == solve(VENEZUELA, horizon=365).headline_text()
    page.wait_for_function("() => window.location.search === '?horizon=365'", timeout=30_000)
    page.close()


def test_ctrl_c_stops_the_server(served):
    _, server = served
    server.process.send_signal(signal.SIGINT)
    shown = server.finish()
    assert server.process.returncode == 0 and "escalate explorer stopped" in shown
    assert "Traceback" not in shown


def test_the_core_install_never_imports_panel():
    import subprocess
    import sys

    code = "import sys, escalate, escalate.cli; print('panel' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_without_panel_the_explorer_says_which_extra_to_install(monkeypatch, cli):
    import sys

    for name in [m for m in sys.modules if m.startswith("escalate.explore")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "panel", None)  # as if not installed
    done = cli("explore", VENEZUELA, "--port", "0")
    assert done.exit_code == 2
    assert "the explorer needs Panel, an optional extra: pip install -e '.[explore]'" in done.stderr
