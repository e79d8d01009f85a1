"""How the bench writes a figure (`NA` for one not measured) and the ratio of two (None unless both are)."""

from __future__ import annotations


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(a, b):
    return a / b if a is not None and b else None
