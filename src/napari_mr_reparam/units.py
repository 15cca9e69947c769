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
