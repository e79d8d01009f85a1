"""The Validation tab's trend chart of a check against history, drawn on the server as inline SVG.

A failing or warning check shows the previous months' values and this month's (`trend_svg`), under
the figures `streamflow.validation_view` writes; both write a figure the same way (`page_figure`).
"""

from __future__ import annotations

import html
import math
from decimal import Decimal
from typing import Any

#: The chart's box, and its plot area inside it: the dates below, the min and max on the right.
_W, _H = 240, 64
_LEFT, _RIGHT, _TOP, _BOTTOM = 5, 190, 8, 45
_POINT = {"fail": "#b00020", "warn": "#b35900"}


def trend_svg(row: dict, figures: dict, status: str) -> str:
    """The previous months' values and this month's as an inline SVG polyline (no script: the page's CSP),
    this month's point in the colour of the result; empty without a previous value to compare with."""
    points = [(h.get("as_of"), h.get("value"), False) for h in figures.get("history") or []
              if isinstance(h, dict) and _numeric(h.get("value"))]
    if not points:
        return ""
    if _numeric(figures.get("this")):
        points.append((row["as_of"], figures["this"], True))
    values = [float(value) for _, value, _ in points]
    low, high = min(values), max(values)

    def x(index: int) -> float:
        return (_LEFT + _RIGHT) / 2 if len(points) == 1 else _LEFT + index * (_RIGHT - _LEFT) / (len(points) - 1)

    def y(value: float) -> float:  # equal values: a flat line through the middle
        return (_TOP + _BOTTOM) / 2 if high == low else _BOTTOM - (value - low) / (high - low) * (_BOTTOM - _TOP)

    xy = [(x(i), y(v)) for i, v in enumerate(values)]
    metric = figures.get("metric") or row["expectation_type"] or "value"
    title = f"{metric} by as_of: " + ", ".join(f"{as_of} {page_figure(value)}" for as_of, value, _ in points)
    dots = "".join(
        f"<circle class='this' cx='{px:.1f}' cy='{py:.1f}' r='3.5' fill='{_POINT[status]}'/>" if this
        else f"<circle cx='{px:.1f}' cy='{py:.1f}' r='2' fill='#666'/>"
        for (px, py), (_, _, this) in zip(xy, points, strict=True))
    label = "<text x='{}' y='{}' text-anchor='{}'>{}</text>".format
    labels = label(_LEFT, _H - 4, "start", _e(points[0][0]))
    if len(points) > 1:
        labels += label(_RIGHT, _H - 4, "end", _e(points[-1][0]))
    labels += label(_RIGHT + 5, _TOP + 3, "start", _e(page_figure(high)))
    if high != low:
        labels += label(_RIGHT + 5, _BOTTOM + 3, "start", _e(page_figure(low)))
    return (f"<svg class='trend' role='img' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}'"
            f" xmlns='http://www.w3.org/2000/svg'><title>{_e(title)}</title>"
            f"<line x1='{_LEFT}' y1='{_BOTTOM + 4}' x2='{_RIGHT}' y2='{_BOTTOM + 4}' stroke='#ddd'/>"
            f"<polyline points='{' '.join(f'{px:.1f},{py:.1f}' for px, py in xy)}' fill='none' stroke='#666'"
            f" stroke-width='1.5'/>{dots}<g font-size='10' fill='#555'>{labels}</g></svg>")


def page_figure(value: Any) -> str:
    """A figure as the page writes it (the chart's labels, the figures beside it): integers as integers
    (7043, also 7043.0), other numbers to 4 significant digits (0.8312, 17.2), a thousand and over
    without decimals; `no value` for null; anything else as it is."""
    if value is None:
        return "no value"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    # `.4g` writes an integral float under 1000 as an integer; from 1000 on, `.4g` would round 9999.6 to 1e+04.
    return f"{number:.0f}" if abs(number) >= 1000 else f"{number:.4g}"


def _numeric(value: Any) -> bool:
    return (isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
