"""Acquisition parameters as one value: sequence, TE, TR, TI (ms) and flip angle (degrees).

:class:`Acquisition` is what a request, the simulator and the inference engine pass
around instead of loose times. Its times are scalars, or one value per slice (1-D
arrays) where each slice of a stack has its own acquisition (evaluation does this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import DEFAULT_TE_MS, DEFAULT_TR_MS
from .physics import INPUT_SEQUENCES
from .units import refuse_seconds, seconds_checked_tr

#: Sequences an acquisition may name: an input's or a target's (double inversion recovery
#: is rendered only, from maps).
ACQUISITION_SEQUENCES = (*INPUT_SEQUENCES, "double_inversion_recovery")
#: Which parameters beyond TE and TR each sequence reads (``ti``, ``ti2``, ``flip``).
SEQUENCE_READS = {"spin_echo": (), "inversion_recovery": ("ti",), "gradient_echo": ("flip",),
                  "mprage": ("ti", "flip"), "double_inversion_recovery": ("ti", "ti2")}
#: The acquisition range the bundled models were trained on (ms), per parameter: the
#: paper's protocol draws TE in 20 ms-1 s and TR in 1.2-10 s.
TRAINED_RANGE_MS = {"te": (20.0, 1000.0), "tr": (1200.0, 10000.0)}


@dataclass(frozen=True)
class Acquisition:
    """Sequence parameters of an image. Times in milliseconds, flip angle in degrees.

    ``ti_ms`` is needed by ``inversion_recovery``, ``flip_deg`` by ``gradient_echo``,
    both by ``mprage`` (an input sequence only); ``double_inversion_recovery`` takes
    ``ti_ms`` (first inversion) and ``ti2_ms`` (second, shorter).
    Impossible values, and times that can only be seconds, raise ``ValueError`` with a
    one-line reason.
    """

    te_ms: float
    tr_ms: float
    sequence: str = "spin_echo"
    ti_ms: float | None = None
    flip_deg: float | None = None
    ti2_ms: float | None = None

    def __post_init__(self):
        if self.sequence not in ACQUISITION_SEQUENCES:
            raise ValueError(f"unknown sequence {self.sequence!r}; known: {', '.join(ACQUISITION_SEQUENCES)}")
        # a spoiled gradient echo's TR can be a few ms, so only its TE and TI are checked
        refuse_seconds(te=self.te_ms, tr=seconds_checked_tr(self.tr_ms, self.sequence), ti=self.ti_ms,
                       ti2=self.ti2_ms)
        validate_times(self.te_ms, self.tr_ms, self.ti_ms, self.ti2_ms)
        validate_flip(self.flip_deg)
        if self.ti2_ms is not None and not np.all(np.less(self.ti2_ms, self.ti_ms if self.ti_ms is not None else 0)):
            first = "no first inversion time" if self.ti_ms is None else f"TI ({float(np.max(self.ti_ms)):g} ms)"
            raise ValueError(f"TI2 ({float(np.max(self.ti2_ms)):g} ms), the second inversion time, must be shorter "
                             f"than {first}")
        _refuse_echo_after_cycle(self)

    @classmethod
    def default(cls) -> "Acquisition":
        """The Default-to-Param input: spin echo at TE 50 ms / TR 4500 ms."""
        return cls(DEFAULT_TE_MS, DEFAULT_TR_MS)

    def per_slice(self, count: int) -> "Acquisition":
        """The same acquisition with its times as arrays of ``count`` values (float32)."""
        def spread(v):
            return None if v is None else np.broadcast_to(np.asarray(v, np.float32), (count,))

        return Acquisition(spread(self.te_ms), spread(self.tr_ms), self.sequence, spread(self.ti_ms),
                           spread(self.flip_deg), spread(self.ti2_ms))

    def take(self, index) -> "Acquisition":
        """The acquisition of slices ``index`` (times given per slice are indexed)."""
        def pick(v):
            return v[index] if np.ndim(v) else v

        return Acquisition(pick(self.te_ms), pick(self.tr_ms), self.sequence, pick(self.ti_ms),
                           pick(self.flip_deg), pick(self.ti2_ms))


def sample_te_tr(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` (TE, TR) pairs in ms: TR uniform, TE log-uniform (short TE likelier).

    Times are rounded to 0.1 ms so that the manifest states them exactly.
    """
    tr = rng.uniform(*TRAINED_RANGE_MS["tr"], size=count)
    te = np.exp(rng.uniform(np.log(TRAINED_RANGE_MS["te"][0]), np.log(TRAINED_RANGE_MS["te"][1]), size=count))
    return np.round(te, 1), np.round(tr, 1)


#: The longest time (ms) taken for a TE, TR or TI: no scan's is near it (a longer value is a
#: slip of the keyboard, and renders nothing).
MAX_TIME_MS = 1e6


def validate_times(te, tr, ti=None, ti2=None) -> None:
    """Raise ``ValueError`` with a one-line reason for impossible TE/TR/TI/TI2 (ms; scalars
    or arrays, checked value by value): each positive, at most :data:`MAX_TIME_MS`, TE
    and the TIs shorter than TR."""
    for name, value in (("TE", te), ("TR", tr), ("TI", ti), ("TI2", ti2)):
        if value is None:
            continue
        values = np.asarray(value, np.float64).ravel()
        bad = values[~(np.isfinite(values) & (values > 0))]
        if bad.size:
            raise ValueError(f"{name} must be a positive number of milliseconds, got {bad[0]:g}")
        if values.max() > MAX_TIME_MS:
            raise ValueError(f"{name} {values.max():g} ms is beyond any scan (at most {MAX_TIME_MS:g} ms, "
                             f"{MAX_TIME_MS / 1000:g} s)")
    for name, value in (("TE", te), ("TI", ti), ("TI2", ti2)):
        if value is None:
            continue
        short, long_ = np.broadcast_arrays(np.asarray(value, np.float64), np.asarray(tr, np.float64))
        wrong = np.flatnonzero(short.ravel() >= long_.ravel())
        if wrong.size:
            i = wrong[0]
            raise ValueError(f"{name} ({short.flat[i]:g} ms) must be shorter than TR ({long_.flat[i]:g} ms)")


def stated_sequence(stated: str | None, ti_ms) -> str:
    """The sequence of an image whose file names ``stated`` (or none): that one, else an
    inversion recovery where its TI is known, else a spin echo."""
    return stated or ("inversion_recovery" if ti_ms else "spin_echo")


def refuse_unread(sequence: str, prefix: str = "", **values) -> None:
    """A ``ValueError`` where a keyword of the Python API gives a value ``sequence`` does
    not read (``ti_ms``, ``ti2_ms``, ``flip_deg``, with ``prefix`` as the caller names them:
    ``input_``): given to a spin echo, a TI means an inversion recovery that was not named,
    which would otherwise be rendered as a spin echo without a word."""
    reads = SEQUENCE_READS.get(sequence, ())
    unread = [key for key, value in values.items() if value is not None and _READ_AS[key][0] not in reads]
    if unread:
        key = unread[0]
        parameter, words = _READ_AS[key]
        raise ValueError(f"{prefix}{key} is given but {prefix}sequence {sequence!r} reads no {words}: name the "
                         f"sequence that does ({prefix}sequence='{_reader_of(parameter)}'), or leave it out")


#: The API's keywords of the parameters beyond TE and TR: what :data:`SEQUENCE_READS` calls
#: each, and what a message calls it.
_READ_AS = {"ti_ms": ("ti", "TI"), "ti2_ms": ("ti2", "second TI"), "flip_deg": ("flip", "flip angle")}


def _reader_of(parameter: str) -> str:
    """The first sequence that reads ``parameter`` (``ti``, ``ti2``, ``flip``)."""
    return next(name for name, reads in SEQUENCE_READS.items() if parameter in reads)


#: The longest TE (ms) an MPRAGE takes: its echo lies between two pulses of its readout,
#: spaced 5-15 ms apart on scanners (a multi-echo MPRAGE's last echo near 7 ms, a
#: low-bandwidth readout's longer).
MPRAGE_MAX_TE_MS = 15.0


def _refuse_echo_after_cycle(acq: "Acquisition") -> None:
    """An inversion recovery (or double inversion recovery) whose echo comes after the next
    inversion (TI + TE not shorter than TR), or an MPRAGE whose TE cannot lie between the
    readout's pulses (:data:`MPRAGE_MAX_TE_MS`): a ``ValueError`` saying so."""
    te, tr, ti = (np.asarray(v, np.float64) if v is not None else None for v in (acq.te_ms, acq.tr_ms, acq.ti_ms))
    if acq.sequence in ("inversion_recovery", "double_inversion_recovery") and ti is not None:
        late = np.broadcast_arrays(ti + te >= tr, ti, te, tr)
        if late[0].any():
            i = int(np.flatnonzero(late[0].ravel())[0])
            first = "first " if acq.sequence == "double_inversion_recovery" else ""
            raise ValueError(f"TI + TE ({late[1].flat[i]:g} + {late[2].flat[i]:g} ms) must be shorter than TR "
                             f"({late[3].flat[i]:g} ms): the echo would come after the next {first}inversion")
    if acq.sequence == "mprage" and np.any(te > MPRAGE_MAX_TE_MS):
        raise ValueError(f"an MPRAGE's TE ({float(np.max(te)):g} ms) lies between two pulses of its readout, "
                         f"at most {MPRAGE_MAX_TE_MS:g} ms; MPRAGE TEs are 2-8 ms")


#: The least flip angle (degrees) taken: below it, a value can only be radians.
MIN_FLIP_DEG = 1.0


def validate_flip(flip_deg, name: str = "flip angle") -> None:
    """Raise ``ValueError`` with a one-line reason for a flip angle outside (0, 180] degrees,
    or below :data:`MIN_FLIP_DEG` (radians, as it can only be; a scanner's flip is a degree
    or more), scalars or arrays, checked value by value; None is skipped. ``name`` is what
    the message calls it (``--flip``)."""
    import math

    if flip_deg is None:
        return
    values = np.asarray(flip_deg, np.float64).ravel()
    bad = values[~(np.isfinite(values) & (values > 0) & (values <= 180))]
    if bad.size:
        raise ValueError(f"{name} must be between 0 and 180 degrees (more than 0, at most 180), got {bad[0]:g}")
    small = values[values < MIN_FLIP_DEG]
    if small.size:
        raise ValueError(f"{name} {small[0]:g} looks like radians ({math.degrees(small[0]):.1f} degrees); "
                         "flip angles are given in degrees")


def default_input_mismatch(te=None, tr=None, sequence=None, ti=None):
    """How an input stated to be acquired so (None: nothing states it) differs from the one
    input acquisition Default-to-Param reads, a spin echo at the default TE/TR:
    ``("sequence", name)``, ``("times", te_ms, tr_ms)`` or None where it does not. A TI
    without a sequence is inversion recovery; a time not stated is the default's."""
    from . import DEFAULT_TE_MS, DEFAULT_TR_MS

    if sequence is None and ti is not None:
        sequence = "inversion_recovery"
    if sequence not in (None, "spin_echo"):  # a flip angle alone is a spin echo's too
        return ("sequence", sequence)
    te_in, tr_in = (DEFAULT_TE_MS if te is None else te), (DEFAULT_TR_MS if tr is None else tr)
    if abs(te_in - DEFAULT_TE_MS) > 1e-3 or abs(tr_in - DEFAULT_TR_MS) > 1e-3:
        return ("times", te_in, tr_in)
    return None


def out_of_range_warnings(te_ms: float, tr_ms: float, trained: dict | None = None) -> list[str]:
    """Human-readable warnings for times outside a trained range (``trained``: {"te": (lo,
    hi), "tr": (lo, hi)} in ms, a model's own from
    :func:`~napari_mr_reparam.acquisition_effects.trained_ranges`; default the protocol's)."""
    out = []
    trained = trained or TRAINED_RANGE_MS
    for key, value in (("te", te_ms), ("tr", tr_ms)):
        lo, hi = trained[key]
        if not lo <= value <= hi:
            out.append(f"{key.upper()} {value:g} ms is outside the trained range "
                       f"{lo:g}-{hi:g} ms; the prediction is an extrapolation")
    return out
