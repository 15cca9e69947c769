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
    job.submit(lambda: release.wait(10) and "first", "a")
    job.submit(lambda: "second", "b")
    job.submit(lambda: "third", "c")  # replaces "second", which never runs
    assert not job.idle
    release.set()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == [("third", ("c",))] and errors == []  # "first" was stale when it came


def test_a_dropped_result_is_not_shown_and_errors_reach_their_slot(qtbot):
    job, done, errors = _job(qtbot)
    release = threading.Event()
    job.submit(lambda: release.wait(10) and "late")
    job.drop()
    release.set()
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert done == []

    def fail():
        raise ValueError("no such target")

    job.submit(fail)
    qtbot.waitUntil(lambda: job.idle, timeout=10000)
    assert [str(e) for e in errors] == ["no such target"] and done == []
