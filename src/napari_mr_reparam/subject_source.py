"""Random training subjects, drawn in the training process or ahead of it in background ones.

A randomized subject (a warped, re-tabled, jittered head and its bias field) takes
seconds to draw, and a stream draws a new one every few dozen examples: on a small
network that is most of a run's time. :class:`BackgroundSubjects` draws them in worker
processes while the network trains, in the order they will be used. Each subject there
comes from its own generator, seeded by the stream's seed and the subject's number, so
a run is the same for any number of workers.
"""

from __future__ import annotations

import multiprocessing
import sys
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .phantoms import Phantom
from .stream_options import StreamOptions

#: What a worker process holds: the base phantoms and the stream's options.
_WORKER: dict = {}


def draw_subject(bases: list[Phantom], rng: np.random.Generator,
                 options: StreamOptions) -> tuple[Phantom, np.ndarray]:
    """One random subject of a base drawn from ``bases`` (as ``options.subject`` says), and
    its bias field (of up to ``options.bias_strength``)."""
    from .phantoms.random_subject import random_bias_field, random_subject

    base = bases[rng.integers(len(bases))]
    subject = random_subject(base, rng, options.subject)
    return subject, random_bias_field(subject.shape, rng, options.bias_strength)


def process_context():
    """Fork where Linux has it, as torch's data loaders do (the workers touch only numpy
    and scipy, and a script needs no ``__main__`` guard); spawn elsewhere."""
    fork = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if fork else "spawn")


def _start_worker(bases, options) -> None:
    _WORKER.update(bases=bases, options=options)


def _numbered_subject(seed: int, number: int) -> tuple[Phantom, np.ndarray]:
    rng = np.random.default_rng([seed, number])
    return draw_subject(_WORKER["bases"], rng, _WORKER["options"])


class BackgroundSubjects:
    """Subjects drawn ahead in ``workers`` processes, handed out in number order.

    Parameters
    ----------
    bases : list of Phantom
        The phantoms subjects are drawn from (sent to each worker once).
    seed : int
        The stream's seed: subject ``k`` comes from ``numpy.random.default_rng([seed, k])``.
    options : StreamOptions
        As :func:`draw_subject` takes them.
    workers : int
        Worker processes (at least 1).
    ahead : int, optional
        Subjects in the making at a time (default: two per worker).
    """

    def __init__(self, bases: list[Phantom], seed: int, options: StreamOptions, workers: int = 1,
                 ahead: int | None = None):
        if workers < 1:
            raise ValueError(f"background subjects need at least one worker, got {workers}")
        self.seed, self.made = int(seed), 0
        self._pool = ProcessPoolExecutor(workers, mp_context=process_context(), initializer=_start_worker,
                                         initargs=(list(bases), options))
        weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        self._pending: deque = deque()
        for _ in range(ahead or 2 * workers):
            self._order()

    def _order(self) -> None:
        self._pending.append(self._pool.submit(_numbered_subject, self.seed, self.made))
        self.made += 1

    def next(self) -> tuple[Phantom, np.ndarray]:
        """The next subject and its bias field (waits for it if it is not made yet)."""
        future = self._pending.popleft()
        self._order()
        return future.result()

    def close(self) -> None:
        """Stop the workers; subjects in the making are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)
