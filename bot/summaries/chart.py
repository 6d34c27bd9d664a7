"""The weekly trend chart: one small panel per criterion, a point per day with its 95% interval
as a band, its target as a labelled line, and the unit on the y axis.

Criteria have different units (a share, milliseconds), so each gets its own y axis. Built on a
bare Figure with the Agg canvas: no pyplot global state, safe in a worker thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

Series = Mapping[str, Sequence[tuple[date, float | None]]]
Bands = Mapping[str, Sequence[tuple[float, float] | None]]  # per day: (low, high), or no interval

PANEL_WIDTH_IN = 7.0
PANEL_HEIGHT_IN = 1.9
DPI = 110
LINE_COLOR = "#3b6fd4"
TARGET_COLOR = "#c0392b"
BAND_ALPHA = 0.2


def trend_figure(
    series: Series,
    targets: Mapping[str, float],
    *,
    percent: Collection[str] = (),
    bands: Bands | None = None,
    units: Mapping[str, str] | None = None,
) -> Figure:
    """A figure with one panel per criterion; None values are gaps (not enough data)."""
    count = max(1, len(series))
    figure = Figure(figsize=(PANEL_WIDTH_IN, PANEL_HEIGHT_IN * count), dpi=DPI)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(count, 1, squeeze=False)[:, 0]
    for axes, (name, points) in zip(axes_list, series.items(), strict=False):
        days = [day for day, _ in points]
        values = [math.nan if value is None else value for _, value in points]
        axes.plot(range(len(days)), values, marker="o", color=LINE_COLOR, label=name)
        if all(math.isnan(value) for value in values):
            axes.text(
                0.5, 0.5, "not enough data", transform=axes.transAxes, ha="center", color="grey"
            )
        _band(axes, (bands or {}).get(name, ()))
        if name in targets:
            _target(axes, targets[name], name in percent)
        axes.set_title(name, loc="left", fontsize=10)
        unit = "%" if name in percent else (units or {}).get(name, "")
        if unit:
            axes.set_ylabel(unit, fontsize=8)
        axes.set_xticks(range(len(days)), [f"{day:%a} {day.day}" for day in days], fontsize=8)
        axes.set_xlim(-0.5, len(days) - 0.5)
        axes.tick_params(axis="y", labelsize=8)
        axes.yaxis.set_major_formatter(
            PercentFormatter(xmax=1) if name in percent else FuncFormatter(_plain_number)
        )
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def _band(axes: Any, band: Sequence[tuple[float, float] | None]) -> None:
    """The 95% interval of each day, shaded; days without one leave a gap."""
    if not band:
        return
    lows = [math.nan if b is None else b[0] for b in band]
    highs = [math.nan if b is None else b[1] for b in band]
    axes.fill_between(
        range(len(band)), lows, highs, color=LINE_COLOR, alpha=BAND_ALPHA, linewidth=0,
        label="95% interval",
    )  # fmt: skip


def _target(axes: Any, target: float, percent: bool) -> None:
    axes.axhline(target, color=TARGET_COLOR, linestyle="--", linewidth=1)
    shown = f"{target * 100:g}%" if percent else f"{target:g}"
    axes.annotate(
        f"target {shown}", xy=(1, target), xycoords=("axes fraction", "data"),
        xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom",
        fontsize=7, color=TARGET_COLOR,
    )  # fmt: skip


def trend_chart_png(
    series: Series,
    targets: Mapping[str, float],
    *,
    percent: Collection[str] = (),
    bands: Bands | None = None,
    units: Mapping[str, str] | None = None,
) -> bytes:
    """The trend chart as PNG bytes, ready to upload to Slack."""
    buffer = io.BytesIO()
    figure = trend_figure(series, targets, percent=percent, bands=bands, units=units)
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plain_number(value: float, _position: int) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
