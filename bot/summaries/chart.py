"""The weekly trend chart: one small panel per criterion, a point per day, its target as a line.

Criteria have different units (a share, milliseconds), so each gets its own y axis. Built on a
bare Figure with the Agg canvas: no pyplot global state, safe in a worker thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

Series = Mapping[str, Sequence[tuple[date, float | None]]]

PANEL_WIDTH_IN = 7.0
PANEL_HEIGHT_IN = 1.9
DPI = 110
LINE_COLOR = "#3b6fd4"
TARGET_COLOR = "#c0392b"


def trend_figure(
    series: Series, targets: Mapping[str, float], *, percent: Collection[str] = ()
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
        if name in targets:
            axes.axhline(targets[name], color=TARGET_COLOR, linestyle="--", linewidth=1)
        axes.set_title(name, loc="left", fontsize=10)
        axes.set_xticks(range(len(days)), [f"{day:%a} {day.day}" for day in days], fontsize=8)
        axes.set_xlim(-0.5, len(days) - 0.5)
        axes.tick_params(axis="y", labelsize=8)
        axes.yaxis.set_major_formatter(
            PercentFormatter(xmax=1) if name in percent else FuncFormatter(_plain_number)
        )
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def trend_chart_png(
    series: Series, targets: Mapping[str, float], *, percent: Collection[str] = ()
) -> bytes:
    """The trend chart as PNG bytes, ready to upload to Slack."""
    buffer = io.BytesIO()
    trend_figure(series, targets, percent=percent).savefig(buffer, format="png")
    return buffer.getvalue()


def _plain_number(value: float, _position: int) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
