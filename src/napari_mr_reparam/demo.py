"""The main job: napari with the sample head, its ground truths and the widget docked.

The first view is a grid of four images: the input, the prediction at the T2-weighted
ground truth's TE/TR, that ground truth and their difference, each named in its cell,
in a window that fits the screen.
"""

from __future__ import annotations

import os
import sys

#: The largest share of the screen the window takes.
SCREEN_SHARE = 0.94
#: Width of a caption's character on screen, in pixels per point of its font size
#: (napari's overlay font), and the font sizes (points) a caption keeps between.
CAPTION_PX_PER_PT = 0.95
CAPTION_PT = (6.0, 10.0)


def missing_display() -> bool:
    """True on Linux when no X11 or Wayland display is reachable (checked before Qt
    starts, which would otherwise abort) and Qt was not told to draw offscreen."""
    if not sys.platform.startswith("linux"):
        return False
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal", "vnc", "eglfs")):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def missing_qt() -> str:
    """Why napari cannot open a window where no Qt binding is installed (the package's
    plain install carries none: its ``[qt]`` extra does), as one line; empty where one is."""
    try:
        import qtpy  # noqa: F401 - raises where it finds no binding
    except ImportError:
        return ("no Qt binding is installed, which napari's window needs: install one, e.g. "
                "pip install 'napari-mr-reparam[qt]' (PyQt6)")
    return ""


def open_demo(viewer=None, model: str = "physics", device: str = "auto", run: bool = True):
    """Load the sample data into ``viewer`` (a new one when None) and dock the widget.

    Returns ``(viewer, widget)``. The input layer is selected as the widget's image and
    the T2-weighted ground truth as its ground truth; the other ground truths stay in the
    layer list, hidden. With ``run`` the whole volume is predicted at once.
    """
    import napari

    from ._sample_data import make_sample_all
    from ._widget import ReparamWidget

    viewer = viewer or napari.Viewer(title="napari-mr-reparam")
    for data, kwargs, _ in make_sample_all():
        viewer.add_image(data, **kwargs)
    widget = ReparamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="MR Re-parameterization", area="right")
    widget.reset_choices()
    layers = list(viewer.layers)
    widget.image.value = layers[0]
    truths = [l for l in layers[1:] if l.metadata.get("te_ms")]
    widget.model.value = model
    widget.device.value = device
    if truths:
        target = truths[-1]
        for other in truths[:-1]:
            other.visible = False
        widget.live.value = False  # no slice preview before the whole volume
        widget.ground_truth.value = target
        widget.te.value, widget.tr.value = target.metadata["te_ms"], target.metadata["tr_ms"]
        widget.live.value = True
    _grid_view(viewer)
    fit_to_screen(viewer)
    if run:
        widget.run.clicked.emit()
    return viewer, widget


def _grid_view(viewer) -> None:
    """Visible layers side by side, each with its name in a font its cell holds;
    refitted when outputs arrive and when the window changes size."""
    viewer.canvas.grid.enabled = True
    for layer in viewer.layers:
        layer.name_overlay.visible = True

    def on_inserted(event):
        event.value.name_overlay.visible = True
        fit_captions(viewer)
        viewer.reset_view()

    viewer.layers.events.inserted.connect(on_inserted)
    viewer.canvas.events.size.connect(lambda event: fit_captions(viewer))
    fit_captions(viewer)
    viewer.reset_view()


def caption_points(cell_width_px: float, longest_name: int) -> float:
    """The font size (points) at which a name of ``longest_name`` characters fills at most
    nine tenths of a grid cell ``cell_width_px`` wide, within :data:`CAPTION_PT`."""
    fit = 0.9 * cell_width_px / (CAPTION_PX_PER_PT * max(longest_name, 1))
    return float(min(max(fit, CAPTION_PT[0]), CAPTION_PT[1]))


def fit_captions(viewer) -> None:
    """Every layer's name overlay in the size :func:`caption_points` gives for the
    longest visible name in the grid's cells."""
    names = [len(layer.name) for layer in viewer.layers if layer.visible]
    if not names:
        return
    width = float(viewer.canvas.viewbox_size(viewer.layers)[1])
    size = caption_points(width, max(names))
    for layer in viewer.layers:
        layer.name_overlay.font_size = size


def fit_to_screen(viewer) -> None:
    """Size the window to a share of the screen it opens on, top left."""
    from qtpy.QtWidgets import QApplication

    window = viewer.window._qt_window
    screen = window.screen() or QApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    window.resize(int(area.width() * SCREEN_SHARE), int(area.height() * SCREEN_SHARE))
    window.move(area.left(), area.top())


def run_demo(model: str = "physics", device: str = "auto") -> int:
    import napari

    open_demo(model=model, device=device)
    napari.run()
    return 0
