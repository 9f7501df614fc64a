"""Line charts as inline SVG, drawn on the server: the console works with no network and
no JavaScript library, and a chart is as cacheable and testable as any other HTML."""

from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Distinguishable on screen and in greyscale print (Okabe–Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 30, 12, 40


@dataclass(frozen=True)
class Series:
    label: str
    values: list  # one per x label; None where there is no data
    color: str = ""
    bold: bool = False


def line_chart(title: str, x_labels: list[str], series: list[Series], *, y_format=str) -> SafeString:
    """An accessible SVG line chart: a <title>, axes, one polyline per series, a legend."""
    numbers = [float(v) for s in series for v in s.values if v is not None]
    top, steps = _nice_scale(max(numbers)) if numbers else (1.0, 5)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(x_labels) - 1, 1)

    def x(i):
        return LEFT + i * step

    def y(value):
        return TOP + plot_h - (float(value) / top) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18 * _legend_rows(series)}" '
        f'width="100%" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for step_number in range(steps + 1):
        value = top * step_number / steps
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e5e5e5"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end" fill="#555">{escape(y_format(value))}</text>'
        )
    every = max(1, len(x_labels) // 8)  # at most about eight week labels
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == len(x_labels) - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle" fill="#555">{escape(label)}</text>'
            )
    for n, s in enumerate(series):
        color = s.color or PALETTE[n % len(PALETTE)]
        width = 3 if s.bold else 1.75
        for run in _runs(s.values):  # a gap in the data is a gap in the line
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{points}"/>')
            for i, v in run:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{width + 0.5}" fill="{color}">'
                    f"<title>{escape(s.label)}, {escape(x_labels[i])}: {escape(y_format(v))}</title></circle>"
                )
    for n, s in enumerate(series):  # legend, four to a row, under the axis labels
        row, col = divmod(n, 4)
        lx, ly = LEFT + col * 150, HEIGHT - 6 + row * 18
        color = s.color or PALETTE[n % len(PALETTE)]
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="4" fill="{color}"/>')
        parts.append(f'<text x="{lx + 16}" y="{ly - 4}" font-size="11" fill="#333">{escape(s.label[:22])}</text>')
    if not numbers:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" font-size="13" text-anchor="middle" fill="#777">No data yet</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated string above is escaped


def _legend_rows(series) -> int:
    return max(0, (len(series) - 1) // 4)


def _runs(values):
    run = []
    for i, v in enumerate(values):
        if v is None:
            if run:
                yield run
            run = []
        else:
            run.append((i, v))
    if run:
        yield run


def _nice_scale(value: float) -> tuple[float, int]:
    """The axis top (1, 2 or 5 × 10^k, the smallest at or above value) and its number of
    grid steps, chosen so every grid line falls on a round number."""
    if value <= 0:
        return 1.0, 5
    magnitude = Decimal(10) ** (Decimal(str(value)).adjusted())
    for factor, steps in ((1, 5), (2, 4), (5, 5), (10, 5)):
        if magnitude * factor >= Decimal(str(value)):
            return float(magnitude * factor), steps
    return float(magnitude * 10), 5
