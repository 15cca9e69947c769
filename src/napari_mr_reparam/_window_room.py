"""Room for the image beside the docked widget.

napari opens a window of its last size, or, the first time, of a size Qt picks (640 x 508
pixels on some systems). The widget's dock and napari's layer controls together are wider
than that, and the image between them (the window's central widget: the canvas and its
sliders) shrinks to nothing: the person who docks the widget sees controls and no image.
While the dock is laid out (the first :data:`WATCH_MS` after the widget is made), a window
that leaves its central widget narrower than :data:`MIN_CANVAS_PX` is widened by what is
missing, within its screen; a window the person narrows later is theirs. Only Qt's own
calls are made, on the window that holds the widget.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, QTimer

#: The narrowest the image (the window's central widget) is left once the widget is docked (pixels).
MIN_CANVAS_PX = 420
#: How long after the widget is made its window is watched (ms).
WATCH_MS = 3000


def make_room(widget) -> None:
    """Widen the main window that holds ``widget`` (a QWidget, docked in it and shown) so
    that the window's central widget is at least :data:`MIN_CANVAS_PX` wide, as far as its
    screen allows, moving it left where its right edge would leave the screen. A widget not
    in a window of its own kind, and a window hidden, maximized or full-screen, or whose
    central widget is wide enough, are left as they are."""
    from qtpy.QtWidgets import QApplication, QMainWindow

    try:
        window = widget.window()
        central = window.centralWidget() if isinstance(window, QMainWindow) else None
        if central is None or not window.isVisible() or window.isMaximized() or window.isFullScreen():
            return
    except RuntimeError:  # the widget or its window already deleted
        return
    missing = MIN_CANVAS_PX - central.width()
    screen = window.screen() or QApplication.primaryScreen()
    if missing <= 0 or screen is None:
        return
    area = screen.availableGeometry()
    width = min(area.width(), window.width() + missing)
    window.resize(width, window.height())
    if window.x() + width > area.x() + area.width():
        window.move(max(area.x(), area.x() + area.width() - width), window.y())


class RoomWatch(QObject):
    """:func:`make_room` at once and whenever ``widget`` is resized (docked, laid out)
    within :data:`WATCH_MS`, then no more."""

    def __init__(self, widget):
        super().__init__(widget)
        self._widget = widget
        widget.installEventFilter(self)
        QTimer.singleShot(0, self._check)
        QTimer.singleShot(WATCH_MS, self.stop)

    def _check(self) -> None:
        if self._widget is not None:
            make_room(self._widget)

    def eventFilter(self, watched, event) -> bool:
        if watched is self._widget and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            QTimer.singleShot(0, self._check)  # after the layout that resized it
        return False

    def stop(self) -> None:
        """Watch no more."""
        if self._widget is not None:
            try:
                self._widget.removeEventFilter(self)
            except RuntimeError:  # the widget already deleted
                pass
            self._widget = None
