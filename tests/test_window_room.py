"""The image keeps room beside the docked widget (napari_mr_reparam._window_room)."""

from napari_mr_reparam import _window_room


def test_a_narrow_window_is_widened_so_the_image_shows_beside_the_dock(make_napari_viewer, qtbot):
    from napari_mr_reparam._widget import ReparamWidget

    viewer = make_napari_viewer(show=True)
    window, canvas = viewer.window._qt_window, viewer.window._qt_viewer.canvas.native
    window.resize(640, 508)  # the size Qt gives a first napari window on some systems
    qtbot.waitUntil(lambda: window.width() == 640)
    viewer.window.add_dock_widget(ReparamWidget(viewer), area="right")
    screen = window.screen().availableGeometry().width()  # 800 on Qt's offscreen platform

    def roomy():
        return canvas.width() >= _window_room.MIN_CANVAS_PX or window.width() == screen

    qtbot.waitUntil(roomy, timeout=5000)
    assert window.width() > 640 and window.height() == 508  # only wider, as far as the screen allows


def test_a_widget_not_in_a_shown_main_window_is_left_alone(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QWidget

    alone = QWidget()
    qtbot.addWidget(alone)
    _window_room.make_room(alone)  # its own window: nothing to widen, no error
    viewer = make_napari_viewer()  # not shown: nothing to make room in
    from napari_mr_reparam._widget import ReparamWidget

    widget = ReparamWidget(viewer)
    viewer.window.add_dock_widget(widget)
    window = widget.native.window()
    before = window.size()
    _window_room.make_room(widget.native)
    assert window.size() == before
