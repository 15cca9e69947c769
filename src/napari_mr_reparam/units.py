"""Time units: the one place where seconds and milliseconds meet.

Everything a person types or reads (UI, CLI, file names) and everything inside the
physics, phantoms and simulator is in **milliseconds**. Seconds appear only at the
edges: BIDS sidecars (``EchoTime``, ``RepetitionTime``), the MRiLab phantom files and
the paper models' parameter tensor, which holds raw seconds as the authors did.
"""

from __future__ import annotations

MS_PER_S = 1000.0


def s_to_ms(seconds):
    """Convert seconds (scalar or array) to milliseconds."""
    return seconds * MS_PER_S


def ms_to_s(milliseconds):
    """Convert milliseconds (scalar or array) to seconds."""
    return milliseconds / MS_PER_S


#: Times (ms) below which a value can only have been typed in seconds: no MR scan has a
#: TE under 1 ms, a TR under 10 ms or a TI under 10 ms in the sequences this package renders.
SECONDS_BELOW_MS = {"TE": 1.0, "TR": 10.0, "TI": 10.0, "TI2": 10.0}


def refuse_seconds(**times) -> None:
    """Raise ``ValueError`` when a time given in ms can only be seconds.

    Keywords are ``te``, ``tr``, ``ti``, ``ti2`` and ``input_te``/``input_tr`` (ms; scalars or
    arrays; None is skipped). The message names the value and suggests the ms reading,
    e.g. ``TE 0.1 looks like seconds; times are in milliseconds (did you mean 100 ms?)``.
    """
    import numpy as np

    for key, value in times.items():
        if value is None:
            continue
        short = key.rsplit("_", 1)[-1].upper()
        name = f"input {short}" if key.startswith("input_") else short
        limit = SECONDS_BELOW_MS[short]
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        small = values[(values > 0) & (values < limit)]
        if small.size:
            v = float(small[0])
            raise ValueError(f"{name} {v:g} looks like seconds; times are in milliseconds "
                             f"(did you mean {s_to_ms(v):g} ms?)")


#: Sequences whose TR may be a few ms (a spoiled gradient echo's): it is not taken for seconds.
SHORT_TR_SEQUENCES = ("gradient_echo",)


def seconds_checked_tr(tr, sequence: str | None):
    """The TR (ms) :func:`refuse_seconds` checks for an acquisition of ``sequence``: ``tr``,
    or None where the sequence's TR may be a few ms (:data:`SHORT_TR_SEQUENCES`), as
    :class:`~napari_mr_reparam.acquisition.Acquisition` checks it."""
    return None if sequence in SHORT_TR_SEQUENCES else tr


#: BIDS sidecar times (seconds, as BIDS stores them) above which a value can only have been
#: written in milliseconds: no scan has a TE over 2 s, a TR over 100 s or a TI over 30 s.
MILLISECONDS_ABOVE_S = {"EchoTime": 2.0, "RepetitionTime": 100.0, "InversionTime": 30.0}


def refuse_milliseconds(key: str, seconds: float) -> None:
    """Raise ``ValueError`` when a sidecar's ``key`` (``EchoTime``, ``RepetitionTime`` or
    ``InversionTime``) can only be milliseconds, e.g. ``EchoTime 30 looks like
    milliseconds; BIDS sidecars store seconds (did you mean 0.03 s?)``."""
    if seconds > MILLISECONDS_ABOVE_S[key]:
        raise ValueError(f"{key} {seconds:g} looks like milliseconds; BIDS sidecars store seconds "
                         f"(did you mean {ms_to_s(seconds):g} s?)")
