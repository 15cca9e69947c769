"""Work the widget hands to a napari worker thread, keeping only the newest request.

A whole-volume render from cached maps, or a comparison of a volume with its ground
truth, takes from a tenth of a second to a second on a volume of a real scan's depth:
too long for the GUI thread. :class:`LatestJob` runs one such function at a time in a
napari ``thread_worker``. A request made while one runs waits, replacing any request
already waiting; a result that a newer request (or :meth:`LatestJob.drop`) has made
stale is dropped instead of shown.
"""

from __future__ import annotations


class LatestJob:
    """One function at a time off the GUI thread; only the newest request's result shown.

    ``on_done(result, *context)`` and ``on_error(exc)`` run on the GUI thread, for the
    newest request only.
    """

    def __init__(self, on_done, on_error):
        self._on_done, self._on_error = on_done, on_error
        self._serial = 0
        self._pending = None
        self._worker = None

    @property
    def idle(self) -> bool:
        return self._worker is None and self._pending is None

    def submit(self, compute, *context) -> None:
        """Run ``compute()`` in a worker thread and pass its result with ``context``."""
        self._serial += 1
        self._pending = (self._serial, compute, context)
        if self._worker is None:
            self._start()

    def drop(self) -> None:
        """Forget the waiting request; a result in flight is dropped when it comes."""
        self._serial += 1
        self._pending = None

    def _start(self) -> None:
        from napari.qt.threading import thread_worker

        serial, compute, context = self._pending
        self._pending = None

        @thread_worker(ignore_errors=True)
        def work():
            return compute()

        worker = work()
        worker.returned.connect(lambda result: self._deliver(serial, self._on_done, result, *context))
        worker.errored.connect(lambda exc: self._deliver(serial, self._on_error, exc))
        worker.finished.connect(self._finished)
        self._worker = worker
        worker.start()

    def _deliver(self, serial: int, slot, *args) -> None:
        if serial == self._serial:
            slot(*args)

    def _finished(self) -> None:
        self._worker = None
        if self._pending is not None:
            self._start()
