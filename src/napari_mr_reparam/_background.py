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
        if self.cancelled():  # stopped (the widget closed, say): no news to deliver
            return
        try:
            self.signals.advanced.emit(int(n))
        except RuntimeError:  # its Qt object deleted with the window
            self.cancel.set()


def _deleted(exc: RuntimeError) -> bool:
    """Whether ``exc`` says a Qt object was deleted (PyQt: "wrapped C/C++ object ... has been
    deleted"; PySide: "Internal C++ object ... already deleted")."""
    return "deleted" in str(exc)


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
        self.closed = False  # its window closed: nothing more is delivered or started

    @property
    def idle(self) -> bool:
        return self._worker is None and self._pending is None

    @property
    def busy(self) -> bool:
        """Whether a request is running (another one would wait)."""
        return self._worker is not None

    def submit(self, compute, *context) -> None:
        """Run ``compute(job)`` in a worker thread and pass its result with ``context``
        (nothing, once closed)."""
        if self.closed:
            return
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

    def close(self) -> None:
        """Stop for good (the widget's window closed): the running request is asked to stop,
        and nothing it or a waiting one would deliver reaches the widget's deleted controls."""
        self.closed = True
        self.cancel()

    def wait(self, msecs: int = 3000) -> None:
        """Block until the running request's thread has ended, at most ``msecs`` (its
        window closing: a thread that outlived it would signal through deleted Qt objects).
        Cancel it first: the engine stops at its next step."""
        if self._worker is None:
            return
        from qtpy.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(msecs)  # napari's workers run in the global pool

    def _start(self) -> None:
        from napari.qt.threading import thread_worker

        serial, compute, context = self._pending
        self._pending = None
        job = Job()
        if self._on_progress is not None:
            job.signals.advanced.connect(lambda n: self._call(self._on_progress, n) if not self.closed else None)

        # napari keeps every worker it made (its task list, for the activity dock) for good:
        # what the run holds (the request, its volume, the maps rendered from) is let go
        # when it ends, after its result was delivered (``finished`` comes after it)
        run = {"compute": compute, "context": context}

        @thread_worker(ignore_errors=True)
        def work():
            return run["compute"](job)

        worker = work()
        worker.returned.connect(lambda result: self._deliver(serial, self._on_done, result, *run["context"]))
        worker.errored.connect(lambda exc: self._deliver(serial, self._on_error, exc))
        worker.finished.connect(run.clear)
        worker.finished.connect(self._finished)
        self._worker, self.job, self.running = worker, job, context
        if self._on_start is not None:
            self._on_start(*context)
        worker.start()

    def _deliver(self, serial: int, slot, *args) -> None:
        if not self.closed and (self._keep_stale or serial == self._serial):
            self._call(slot, *args)

    def _call(self, slot, *args) -> None:
        """``slot(*args)``; a widget deleted meanwhile (its window closed) closes this instead."""
        try:
            slot(*args)
        except RuntimeError as exc:
            if not _deleted(exc):
                raise
            self.close()

    def _finished(self) -> None:
        self._worker, self.job, self.running = None, None, ()
        if self.closed:
            return
        if self._on_finished is not None:
            self._call(self._on_finished)
        if self._pending is not None and not self.closed:
            self._start()
