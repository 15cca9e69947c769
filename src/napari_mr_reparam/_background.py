"""Work the widget hands to a napari worker thread, one request at a time.

The model's work (maps or a prediction: seconds), a whole-volume render from cached maps
and a comparison of a volume with its ground truth (a tenth of a second to a second on a
volume of a real scan's depth) are all too long for the GUI thread. :class:`LatestJob`
runs one such function at a time in a napari ``thread_worker``. A request made while one
runs waits, replacing any request already waiting. A result that a newer request has
superseded is dropped, unless the job keeps stale results: the model's work does (its
maps serve the newer request too), a render or a comparison does not (the newer one
follows). Each run has a :class:`Job`: its cancel flag and its progress signal, which the
engine's callbacks drive from the worker thread.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import QObject, Signal


class _ProgressSignals(QObject):
    advanced = Signal(int)


class Job:
    """One run's cancel flag and its progress signal (emitted from the worker thread,
    received on the GUI thread): the engine's ``cancelled`` and ``progress`` hooks."""

    def __init__(self):
        self.cancel = threading.Event()
        self.signals = _ProgressSignals()

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def advance(self, n: int) -> None:
        self.signals.advanced.emit(int(n))


class LatestJob:
    """One function at a time off the GUI thread; the newest waiting request next.

    ``submit(compute, *context)`` runs ``compute(job)`` (``job`` a :class:`Job`) in a
    worker thread. On the GUI thread: ``on_start(*context)`` as a run starts,
    ``on_progress(n)`` as it advances, ``on_done(result, *context)`` or
    ``on_error(exc)`` when it ends (for the newest request only, unless
    ``keep_stale``), then ``on_finished()``.
    """

    def __init__(self, on_done, on_error, *, on_start=None, on_progress=None, on_finished=None,
                 keep_stale: bool = False):
        self._on_done, self._on_error = on_done, on_error
        self._on_start, self._on_progress, self._on_finished = on_start, on_progress, on_finished
        self._keep_stale = keep_stale
        self._serial = 0
        self._pending = None
        self._worker = None
        self.job: Job | None = None  # the running request's
        self.running: tuple = ()  # and its context

    @property
    def idle(self) -> bool:
        return self._worker is None and self._pending is None

    @property
    def busy(self) -> bool:
        """Whether a request is running (another one would wait)."""
        return self._worker is not None

    def submit(self, compute, *context) -> None:
        """Run ``compute(job)`` in a worker thread and pass its result with ``context``."""
        self._serial += 1
        self._pending = (self._serial, compute, context)
        if self._worker is None:
            self._start()

    def drop(self) -> None:
        """Forget the waiting request; a result in flight is dropped when it comes (unless
        the job keeps stale results)."""
        self._serial += 1
        self._pending = None

    def cancel(self) -> bool:
        """Forget the waiting request and ask the running one to stop; whether one ran."""
        self.drop()
        if self.job is None:
            return False
        self.job.cancel.set()
        return True

    def _start(self) -> None:
        from napari.qt.threading import thread_worker

        serial, compute, context = self._pending
        self._pending = None
        job = Job()
        if self._on_progress is not None:
            job.signals.advanced.connect(self._on_progress)

        @thread_worker(ignore_errors=True)
        def work():
            return compute(job)

        worker = work()
        worker.returned.connect(lambda result: self._deliver(serial, self._on_done, result, *context))
        worker.errored.connect(lambda exc: self._deliver(serial, self._on_error, exc))
        worker.finished.connect(self._finished)
        self._worker, self.job, self.running = worker, job, context
        if self._on_start is not None:
            self._on_start(*context)
        worker.start()

    def _deliver(self, serial: int, slot, *args) -> None:
        if self._keep_stale or serial == self._serial:
            slot(*args)

    def _finished(self) -> None:
        self._worker, self.job, self.running = None, None, ()
        if self._on_finished is not None:
            self._on_finished()
        if self._pending is not None:
            self._start()
