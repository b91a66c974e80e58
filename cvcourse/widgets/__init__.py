"""Interactive ipywidgets demos. The logic each widget plots lives in the library (and is tested);
the modules here only wire sliders to plots. Import the topic module you need, e.g.
``from cvcourse.widgets import boxes``."""
