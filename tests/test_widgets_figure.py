"""plot_widget's static fallback: its output carries the current figure as image/png (issue 10)."""

import base64

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from IPython.core.formatters import DisplayFormatter  # noqa: E402
from nbconvert import HTMLExporter  # noqa: E402

from cvcourse.widgets.figure import plot_widget  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _line(slope):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, slope])
    ax.set_ylim(-3, 3)
    return fig


@pytest.fixture
def widget():
    return plot_widget(_line, {"slope": widgets.IntSlider(1, -3, 3)})


def test_display_bundle_has_widget_view_and_current_png(widget):
    data, _ = DisplayFormatter().format(widget)
    assert data[WIDGET_VIEW]["model_id"] == widget.model_id
    first = base64.b64decode(data["image/png"])
    assert first.startswith(b"\x89PNG") and first == widget.image.value
    widget.controls["slope"].value = -2  # the fallback follows the figure the controls drew last
    moved = base64.b64decode(DisplayFormatter().format(widget)[0]["image/png"])
    assert moved == widget.image.value and moved != first


def test_static_html_export_without_widget_state_shows_the_figure(widget):
    data, _ = DisplayFormatter().format(widget)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("widget", execution_count=1, outputs=[
        nbformat.v4.new_output("display_data", data=data)]))
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert f"data:image/png;base64,{data['image/png']}" in html
    assert f'"model_id": "{widget.model_id}"' not in html  # no empty widget placeholder without its state


def test_closed_widget_has_no_bundle(widget):
    widget.close()
    assert DisplayFormatter().format(widget)[0].get("image/png") is None
