"""Figure helpers for the detection lectures (8–9): a colour legend for the class colours of the boxes."""

from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cvcourse.viz import class_color


def add_class_legend(fig: Figure, class_names: Sequence[str], extra: Sequence[tuple[str, str]] = (), **kwargs):
    """Add one legend to ``fig`` with the box colour of every object class (the background, class 0, is left out).

    Introduced in lecture 8. The colours are those :func:`cvcourse.viz.draw_boxes` gives each label.

    Args:
        fig: the figure.
        class_names: names indexed by label, ``class_names[0]`` the background.
        extra: further ``(name, colour)`` entries, e.g. ``("ground truth", "white")``.
        **kwargs: passed to ``fig.legend`` (default: one row below the axes).

    Returns:
        the Legend.
    """
    if len(class_names) < 2:
        raise ValueError(f"class_names must hold the background and at least one class, got {list(class_names)}")
    handles = [Patch(edgecolor=class_color(i), facecolor="none", lw=2, label=name)
               for i, name in enumerate(class_names) if i > 0]
    handles += [Patch(edgecolor=colour, facecolor="none", lw=2, label=name) for name, colour in extra]
    opts = {"loc": "lower center", "ncol": len(handles), "fontsize": 8, "frameon": False, "bbox_to_anchor": (0.5, -0.06)}
    return fig.legend(handles=handles, **{**opts, **kwargs})
