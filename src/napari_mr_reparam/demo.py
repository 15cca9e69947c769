"""The main job: napari with the sample head, its ground truths and the widget docked."""

from __future__ import annotations


def open_demo(viewer=None, model: str = "physics", device: str = "auto"):
    """Load the sample data into ``viewer`` (a new one when None) and dock the widget.

    Returns ``(viewer, widget)``. The input layer is selected as the widget's image and
    the T2-weighted ground truth as its ground truth.
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
    if truths:
        target = truths[-1]
        widget.ground_truth.value = target
        widget.te.value, widget.tr.value = target.metadata["te_ms"], target.metadata["tr_ms"]
    widget.model.value = model
    widget.device.value = device
    return viewer, widget


def run_demo(model: str = "physics", device: str = "auto") -> int:
    import napari

    open_demo(model=model, device=device)
    napari.run()
    return 0
