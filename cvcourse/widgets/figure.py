"""Controls that redraw a matplotlib figure, shown as a PNG ``Image`` widget (the lecture widgets' wiring).

Why not ``ipywidgets.interact``: interact prints its figure into an ``Output`` widget. A notebook executed by
nbclient (``jupyter nbconvert --execute``, Jupyter Book) then has nbclient mimic that Output widget, sending a
``comm_msg`` on the kernel's shell socket for every captured output while it awaits the cell's ``execute_reply``
on the same socket. With the asyncio sockets of pyzmq/jupyter_client the reply can then sit unseen in the socket
until the cell timeout (nbclient issue #312): lecture 1 stalled for the whole timeout after its widget cell
although the kernel was idle. Here the figure is rendered to PNG bytes and set as the ``value`` of an ``Image``
widget: no ``Output`` widget, so the executor has nothing to mimic, and the widget state (PNG included) is what
a static export embeds.

Static fallback: the box a :func:`plot_widget` returns displays, next to the widget view, its current figure as
``image/png`` in the same output. JupyterLab, which ranks the widget view higher, shows the live widget; a static
export without saved widget state (``jupyter nbconvert --to html``, whose filter skips a widget view whose state is
not in the notebook; a course site) shows the figure the notebook drew instead of an empty cell.
"""

from __future__ import annotations

import base64
import io
import traceback
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["figure_png", "plot_widget"]


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The PNG bytes of ``fig``; closes the figure (so that nothing else displays it)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"expected a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_widget(draw: Callable[..., Figure], controls: Mapping[str, widgets.ValueWidget],
                layout: Callable[[list[widgets.Widget]], widgets.Box] = widgets.VBox) -> widgets.Box:
    """``controls`` above the figure ``draw(**values)`` returns, redrawn whenever a control's value changes.

    The first drawing runs here, so a broken ``draw`` fails the cell that builds the widget; a later failure
    (a control moved in the browser) is shown in red under the controls instead of the figure.

    Args:
        draw: called with one keyword argument per control (its ``value``); returns a Figure.
        controls: ``{argument name: widget}``, e.g. ``{"channel": IntSlider(...)}``.
        layout: the container (``VBox`` by default).

    Returns:
        The container; ``.controls`` holds ``controls`` and ``.image`` the ``Image`` widget. Displayed, it also
        outputs the current figure as ``image/png``: the static fallback of the module docstring.
    """
    if not controls:
        raise ValueError("plot_widget needs at least one control")
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    error = widgets.HTML(layout=widgets.Layout(display="none"))

    def redraw(_change: object = None) -> None:
        image.value = figure_png(draw(**{name: c.value for name, c in controls.items()}))

    def redraw_or_report(change: object) -> None:
        try:
            redraw(change)
            error.layout.display = "none"
        except Exception:  # noqa: BLE001  (shown to the student, not swallowed: the figure is replaced)
            error.value = f"<pre style='color:#b00'>{traceback.format_exc(limit=-3)}</pre>"
            error.layout.display = None

    redraw()
    for c in controls.values():
        c.observe(redraw_or_report, names="value")
    box = layout([*controls.values(), error, image])
    box.controls, box.image = dict(controls), image
    widget_bundle = box._repr_mimebundle_

    def bundle_with_png(**kwargs: object) -> dict:
        data = widget_bundle(**kwargs)
        if data is not None:  # None: the widget was closed
            data["image/png"] = base64.b64encode(image.value).decode("ascii")
        return data

    box._repr_mimebundle_ = bundle_with_png  # per instance: IPython's display() looks the method up on the object
    return box
