"""The demo's first view: four images side by side, named, in a window that fits the screen."""


def test_first_view_shows_input_prediction_truth_and_difference(make_napari_viewer, tiny_weights, qtbot):
    from napari_mr_reparam.demo import open_demo

    viewer, widget = open_demo(make_napari_viewer(), device="cpu")
    qtbot.waitUntil(lambda: widget.is_idle() and "volume: PSNR" in widget.metrics.value, timeout=120000)
    shown = [layer.name for layer in viewer.layers if layer.visible]
    assert shown == ["head TE50 TR4500", "prediction physics TE120 TR6000", "head TE120 TR6000",
                     "|difference| physics TE120 TR6000"]
    assert viewer.canvas.grid.enabled and viewer.canvas.grid.actual_shape(viewer.layers) == (2, 2)
    assert all(layer.name_overlay.visible for layer in viewer.layers if layer.visible)
    assert widget.progress.value == widget.progress.max and widget.status.value.startswith(("Done (volume)", "Rendered from the maps"))
    window = viewer.window._qt_window
    area = window.screen().availableGeometry()
    assert window.width() <= area.width() and window.height() <= area.height()
    from napari_mr_reparam.demo import CAPTION_PX_PER_PT

    # each caption fits its grid cell (the longest name sets the font for all)
    cell = viewer.canvas.viewbox_size(viewer.layers)[1]
    size = viewer.layers[shown[-1]].name_overlay.font_size
    assert len(shown[-1]) * size * CAPTION_PX_PER_PT <= cell or size == 6.0


def test_caption_points_shrink_a_long_name_to_its_cell_within_bounds():
    from napari_mr_reparam.demo import CAPTION_PT, caption_points

    assert caption_points(800, 10) == CAPTION_PT[1]  # room to spare: the default size
    narrow = caption_points(280, 34)
    assert CAPTION_PT[0] <= narrow < CAPTION_PT[1]
    assert caption_points(20, 34) == CAPTION_PT[0]
