"""The explorer's view, in Panel: the same object in a notebook and on a served page.

Panel serves both from one definition (a notebook cell displays it; ``pn.serve`` puts it on a
Bokeh server page with its own JavaScript, so the page needs no network beyond the server), and
its widgets, Bokeh figure and URL binding (``pn.state.location``) are all it takes. Every move
of a control recomputes one :class:`~escalate.engine.results.Result` and redraws from it.
"""

from __future__ import annotations

import html
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Legend, NumeralTickFormatter
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from escalate.engine.results import Result, dates_of
from escalate.errors import EscalateError
from escalate.explore.controls import Control, Explorable, Settings
from escalate.scenario import Scenario, load

__all__ = ["Explorer", "explore", "serve"]

CSS = """
.escalate-headline { font-size: 1.25em; font-weight: 600; line-height: 1.35; }
.escalate-method { color: #555; font-size: 0.9em; }
.escalate-messages { background: #fff3cd; color: #664d03; border: 1px solid #ffe69c;
                     border-radius: 4px; padding: 0.5em 1em; }
"""
TABLE_CSS = """
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th { border-bottom: 1px solid #333; text-align: right; padding: 4px 8px; }
td { text-align: right; padding: 4px 8px; }
tbody tr:nth-child(odd) { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
"""
STATES = {"on at the start": "on", "off at the start": "off"}


class Explorer(pn.viewable.Viewer):
    """One interactive view of a scenario: a control per parameter and trigger and the
    horizon; the headline, the reach curves (the scenario's own faint behind) and the stage
    table, recomputed as a control moves.

    Parameters
    ----------
    scenario : Scenario, path, or Explorable
    query : dict, optional
        Settings as a URL query gives them (``{"war_mean": "50"}``); names or values the
        scenario cannot take are shown as messages and left at the scenario's values.
    location : bool
        Keep the page's URL in step with the controls (a served page; not in a notebook).
    """

    settings_query = param.Dict(default={}, doc="The current settings as a URL query.")

    def __init__(
        self,
        scenario: Scenario | str | Path | Explorable,
        *,
        query: dict[str, Any] | None = None,
        location: bool = False,
    ):
        super().__init__()
        if isinstance(scenario, Explorable):
            self.explorable = scenario
        else:
            self.explorable = Explorable(
                scenario if isinstance(scenario, Scenario) else load(scenario)
            )
        ex = self.explorable
        self._location = location
        settings = ex.from_query(query or {})
        self.sliders = {name: _slider(c, settings.values[name]) for name, c in ex.controls.items()}
        self.trigger_selects = {
            name: pn.widgets.Select(
                options={f"as in the scenario ({t.initial})": "scenario", **STATES},
                value=settings.triggers[name],
                width=260,
                margin=(0, 10, 10, 10),
            )
            for name, t in ex.trigger_controls.items()
        }
        self.horizon_slider = pn.widgets.FloatSlider(
            label=f"horizon ({ex.model.time_unit}s)",
            start=min(settings.horizon, max(1.0, round(ex.horizon / 8))),
            end=max(settings.horizon, 2 * ex.horizon),
            step=1.0,
            value=settings.horizon,
            format="0",
            width=260,
        )
        self.headline = pn.pane.HTML(
            "", css_classes=["escalate-headline"], sizing_mode="stretch_width"
        )
        self.method = pn.pane.HTML("", css_classes=["escalate-method"], sizing_mode="stretch_width")
        self.messages = pn.pane.HTML("", visible=False, css_classes=["escalate-messages"],
                                     sizing_mode="stretch_width")  # fmt: skip
        self.notes: list[str] = []
        self.table = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[TABLE_CSS])
        self.rows: list[dict[str, str]] = []  # the stage table, as shown
        self.export = pn.widgets.FileDownload(
            callback=self._export,
            filename=f"{ex.model.scenario}-params.yaml",
            label="Export as --params file",
            color="primary",
            width=260,
        )
        self.reset_button = pn.widgets.Button(label="Reset to the scenario", width=260)
        self.reset_button.on_click(self.reset)
        self._base = ex.answer(ex.default)
        self.figure, self._curves = _figure(self._base)
        self._quiet = False
        for widget in self._widgets():
            widget.param.watch(self._moved, "value")
        self.result: Result | None = None
        self.update_ms = float("nan")
        self._show(settings)

    # --- what the view shows -------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings the controls show now."""
        return Settings(
            {name: float(s.value) for name, s in self.sliders.items()},
            {name: s.value for name, s in self.trigger_selects.items()},
            float(self.horizon_slider.value),
        )

    @property
    def headline_text(self) -> str:
        """The headline sentence shown now (as ``run`` and ``solve`` print it)."""
        return self.result.headline_text() if self.result is not None else ""

    def set(self, **values: float | str) -> None:
        """Move controls by name (parameters, triggers, ``horizon``), as a user would, and
        update once."""
        self._quiet = True
        try:
            for name, value in values.items():
                widget = self._widget(name)
                if isinstance(widget, pn.widgets.FloatSlider):
                    widget.start, widget.end = min(widget.start, value), max(widget.end, value)
                widget.value = value
        finally:
            self._quiet = False
        self._moved()

    def _widget(self, name: str):
        if name == "horizon":
            return self.horizon_slider
        widget = self.sliders.get(name) or self.trigger_selects.get(name)
        if widget is None:
            raise EscalateError(f"no parameter or trigger named {name!r}")
        return widget

    def _widgets(self) -> list:
        return [*self.sliders.values(), *self.trigger_selects.values(), self.horizon_slider]

    def _moved(self, *_events) -> None:
        if not self._quiet:
            self._show(self.settings)

    def _show(self, settings: Settings) -> None:
        ex = self.explorable
        messages = list(settings.messages)
        began = time.perf_counter()
        try:
            result = ex.answer(settings)
        except EscalateError as exc:
            messages.append(f"these settings give no answer: {exc}")
            result = None
        with pn.io.hold():  # one message to the page, not one per pane
            if result is not None:
                self.result = result
                self.headline.object = html.escape(result.headline_text(), quote=False)
                self.method.object = _method(result)
                self.rows = _table(result)
                self.table.object = _table_html(self.rows)
                _redraw(self._curves, result)
            self.notes = messages
            self.messages.object = "<br>".join(html.escape(m, quote=False) for m in messages)
            self.messages.visible = bool(messages)
            self.settings_query = ex.to_query(settings)
            self.sync_location()
        self.update_ms = 1000 * (time.perf_counter() - began)

    def sync_location(self) -> None:
        """Put the settings in the page's URL (a served page only): a view can be shared."""
        if self._location and pn.state.location is not None:
            pn.state.location.search = _search(self.settings_query)

    def _export(self) -> io.StringIO:
        return io.StringIO(self.explorable.params_file(self.settings))

    def reset(self, _event=None) -> None:
        """Every control back to the scenario's value, and the view with them."""
        ex = self.explorable
        self._quiet = True
        try:
            for name, slider in self.sliders.items():
                slider.value = ex.default.values[name]
            for select in self.trigger_selects.values():
                select.value = "scenario"
            self.horizon_slider.value = ex.horizon
        finally:
            self._quiet = False
        self._show(ex.default)

    def __panel__(self):
        ex = self.explorable
        model = ex.model
        parameters = pn.Column(
            pn.pane.Markdown("### Parameters"),
            *(pn.Row(self.sliders[name], _tooltip(c)) for name, c in ex.controls.items()),
        )
        triggers = pn.Column(pn.pane.Markdown("### Triggers"))
        for name, select in self.trigger_selects.items():
            label = ex.trigger_controls[name].label
            triggers.extend(
                [pn.pane.HTML(f"<small>{html.escape(label)}</small>", margin=(0, 10)), select]
            )
        controls = pn.Column(
            pn.pane.Markdown("### Horizon"),
            self.horizon_slider,
            self.reset_button,
            self.export,
            triggers,
            parameters,
            width=320,
            height=760,
            scroll=True,
        )
        title = model.title or model.scenario
        main = pn.Column(
            pn.pane.Markdown(f"## {title}"),
            self.messages,
            self.headline,
            self.method,
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
            self.table,
            sizing_mode="stretch_width",
        )
        return pn.Row(controls, main, sizing_mode="stretch_width")


def _slider(control: Control, value: float) -> pn.widgets.FloatSlider:
    unit = f" ({control.unit})" if control.unit else ""
    digits = max(0, -round(math.log10(control.step)))
    return pn.widgets.FloatSlider(
        label=f"{control.name}{unit}",
        start=min(control.low, value),
        end=max(control.high, value),
        step=control.step,
        value=value,
        format="0." + "0" * digits if digits else "0",
        width=260,
    )


def _tooltip(control: Control) -> pn.widgets.TooltipIcon:
    lines = [control.label, f"Range: {control.range_note}; the scenario: {control.value:g}."]
    if control.source:
        lines.append(control.source)
    return pn.widgets.TooltipIcon(value="\n\n".join(line for line in lines if line), margin=(28, 0))


def _method(result: Result) -> str:
    behind = " Faint dashed curves: the scenario as written."
    if result.method == "exact":
        return "Exact (every timing is exponential)." + behind
    return (
        f"Monte Carlo: {result.trajectories:,} trajectories, seed {result.seed} "
        "(the same for every move); the interval is the 95% interval." + behind
    )


def _table(result: Result) -> list[dict[str, str]]:
    """The stage table's rows, as shown (figures formatted)."""
    exact = result.method == "exact"
    rows = []
    for name, stage in result.stages.items():
        reached = f"{stage.p_reached:.1%}"
        if not exact:
            low, high = stage.p_reached_ci
            reached += f" ({low:.1%} to {high:.1%})"
        median = stage.time_to_reach.get("p50")
        unknown = median is None or median != median  # never reached: no median
        shown = "" if unknown else result.date(median) or f"{median:.0f}"
        rows.append(
            {
                "stage": result.labels.get(name, name),
                "P(reached by the horizon)": reached,
                "P(in it at the horizon)": f"{stage.p_at_horizon:.1%}",
                f"mean {result.time_unit}s in it": f"{stage.time_in:.1f}",
                "median time to reach": shown,
            }
        )
    return rows


def _table_html(rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0]) if rows else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _curve_data(result: Result) -> dict[str, list]:
    """The curves as one table: ``x`` (dates, as Bokeh's milliseconds, or times) and a
    column per stage. Plain lists, so a move travels as one JSON message rather than a
    binary frame per curve."""
    grid, names, reached = result.curve_arrays[:3]
    if result.start_date is not None:
        x = dates_of(grid, result.start_date, result.time_unit).astype("datetime64[ms]")
        x = x.astype(np.int64).astype(float)
    else:
        x = np.asarray(grid, float)
    data = {"x": x.tolist()}
    data.update({name: np.round(reached[i], 6).tolist() for i, name in enumerate(names)})
    return data


def _figure(base: Result):
    """The reach curves: the scenario's faint, the current ones over them."""
    dated = base.start_date is not None
    plot = figure(
        height=430,
        sizing_mode="stretch_width",
        x_axis_type="datetime" if dated else "linear",
        y_range=(0, 1),
        x_axis_label="date" if dated else base.time_unit + "s",
        y_axis_label="P(reached by then)",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
    )
    plot.yaxis.formatter = NumeralTickFormatter(format="0%")
    plot.toolbar.logo = None
    # below, in two columns: on the right it leaves a narrow notebook cell a narrow plot
    legend = Legend(click_policy="hide", label_text_font_size="9pt", ncols=2, spacing=2)
    plot.add_layout(legend, "below")
    data = _curve_data(base)
    names = [n for n in base.curve_arrays[1] if data[n][0] < 1]  # not the start stage
    behind, source = ColumnDataSource(data), ColumnDataSource(data)
    for i, name in enumerate(names):
        color = Category10_10[i % 10]
        plot.line("x", name, source=behind, color=color, alpha=0.25, line_width=2,
                  line_dash="dashed")  # fmt: skip
        plot.line("x", name, source=source, color=color, line_width=2,
                  legend_label=base.labels.get(name, name))  # fmt: skip
    plot.add_tools(HoverTool(tooltips=[("P", "$y{0.0%}")], mode="vline"))
    return plot, source


def _redraw(source: ColumnDataSource, result: Result) -> None:
    """New curves, in one message."""
    source.data = _curve_data(result)


def _search(query: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode(query) if query else ""


def explore(scenario: Scenario | str | Path, **settings: float | str) -> Explorer:
    """The explorer of a scenario, for a notebook cell (display the returned object).

    Parameters
    ----------
    scenario : Scenario or path
    **settings
        Starting values by name (parameters, triggers ``on``/``off``, ``horizon``).

    Returns
    -------
    Explorer
    """
    # inline: the notebook carries Bokeh's and Panel's JavaScript, so it needs no network
    pn.extension(raw_css=[CSS], inline=True)
    view = Explorer(scenario, query={k: str(v) for k, v in settings.items()})
    if view.messages.visible:
        raise EscalateError("; ".join(view.notes))
    return view


def serve(scenario: Scenario, *, port: int = 5006, address: str = "127.0.0.1", ready=None) -> None:
    """Serve the explorer on ``http://address:port/`` until interrupted; each browser tab gets
    its own view, its settings from the page's URL query. ``ready(url)`` is called once the
    server listens; returns once the server is stopped (Ctrl-C)."""
    pn.extension(raw_css=[CSS])
    explorable = Explorable(scenario)
    title = f"escalate explorer: {scenario.title or scenario.scenario}"

    def page():
        query = {k: v[-1].decode() for k, v in (pn.state.session_args or {}).items()}
        if not explorable.exact:
            pn.config.throttled = True  # a Monte Carlo answer per release, not per pixel
        view = Explorer(explorable, query=query, location=True)
        pn.state.onload(view.sync_location)  # the URL without what was ignored
        return view

    server = pn.serve(
        page,
        port=port,
        address=address,
        websocket_origin=[f"{address}:{port}", f"localhost:{port}"],
        show=False,
        start=False,
        title=title,
        verbose=False,
    )
    if ready is not None:
        ready(f"http://{address}:{server.port}/")
    server.start()
    try:
        server.io_loop.start()  # until Ctrl-C (Panel's handler stops the loop) or SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
