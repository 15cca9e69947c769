"""LatestJob: work off the GUI thread, only the newest request's result shown."""

import threading

from napari_mr_reparam._background import LatestJob


def _job(qtbot):
    done, errors = [], []
    job = LatestJob(lambda result, *context: done.append((result, context)), errors.append)
    return job, done, errors


def test_a_request_made_while_one_runs_replaces_the_waiting_one(qtbot):
    job, done, errors = _job(qtbot)
    release = threading.Event()
    job.submit(lambda run: release.wait(10) and "first", "a")
    job.submit(lambda run: "second", "b")
    job.submit(lambda run: "third", "c")  # replaces "second", which never runs
    assert not job.idle
    release.set()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == [("third", ("c",))] and errors == []  # "first" was stale when it came


def test_a_dropped_result_is_not_shown_and_errors_reach_their_slot(qtbot):
    job, done, errors = _job(qtbot)
    release = threading.Event()
    job.submit(lambda run: release.wait(10) and "late")
    job.drop()
    release.set()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == []

    def fail(run):
        raise ValueError("no such target")

    job.submit(fail)
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert [str(e) for e in errors] == ["no such target"] and done == []


def test_a_job_that_keeps_stale_results_shows_each_and_reports_its_runs(qtbot):
    done, errors, started, advanced, finished = [], [], [], [], []
    job = LatestJob(lambda result, *context: done.append(result), errors.append, on_start=started.append,
                    on_progress=advanced.append, on_finished=lambda: finished.append(True), keep_stale=True)
    release = threading.Event()

    def first(run):
        run.advance(3)
        release.wait(10)
        return "first"

    job.submit(first, "a")
    assert job.busy and job.running == ("a",) and started == ["a"]
    job.submit(lambda run: "second", "b")
    job.submit(lambda run: "third", "c")  # replaces "second", which never runs
    release.set()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == ["first", "third"] and started == ["a", "c"] and advanced == [3] and len(finished) == 2
    assert errors == [] and job.running == () and job.job is None and not job.cancel()


def test_cancel_stops_the_running_request_and_forgets_the_waiting_one(qtbot):
    done, errors = [], []
    job = LatestJob(lambda result, *context: done.append(result), errors.append, keep_stale=True)

    def until_cancelled(run):
        for _ in range(1000):
            if run.cancelled():
                raise RuntimeError("stopped")
            threading.Event().wait(0.01)
        return "never cancelled"

    job.submit(until_cancelled)
    job.submit(lambda run: "waiting")
    assert job.cancel()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == [] and [str(e) for e in errors] == ["stopped"]
