"""Numbers shown next to a threshold: never rounded across it.

A verdict says "below 0.5" or "> 0.45"; the value printed beside it must say the same
(issue 19 item 11: "best IoU 0.90" for 0.8968 at threshold 0.90 read as a match).
"""
from __future__ import annotations


def against(value: float, threshold: float, decimals: int = 2, most: int = 6) -> str:
    """`value` with the fewest decimals (at least `decimals`, at most `most`) whose shown
    number sits on the same side of `threshold` as the value itself: 0.8968 against 0.9
    reads "0.897", 0.4504 against 0.45 reads "0.4504", 0.62 reads "0.62"."""
    v, t = float(value), float(threshold)
    side = (v > t) - (v < t)
    for d in range(decimals, most + 1):
        text = f"{v:.{d}f}"
        shown = float(text)
        if (shown > t) - (shown < t) == side:
            return text
    return repr(v)
