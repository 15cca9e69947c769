"""Contrasts a radiologist names, with their acquisition parameters: one table.

Each preset is a sequence of :data:`~napari_mr_reparam.physics.TARGET_SEQUENCES` and its
parameters (times in ms, flip angles in degrees), typical of clinical 1.5 T protocols (MPRAGE's
of 3 T research protocols).
The command line (``--preset NAME``, each value overridable) and the widget read them
from :data:`PRESETS`. A preset whose sequence an input can have (all but double
inversion recovery: :func:`input_preset_names`) also names an input's acquisition
(``--input-preset NAME``, the widget's "Input preset"; in Python
``get_input_preset("MPRAGE").acquisition()``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """A named target acquisition. ``ti2`` is double inversion recovery's second
    inversion time (the first is ``ti``)."""

    name: str
    sequence: str
    te: float
    tr: float
    ti: float | None = None
    ti2: float | None = None
    flip_deg: float | None = None
    what: str = ""

    def describe(self) -> str:
        """One line with every parameter, e.g. ``FLAIR: inversion recovery, TE 120 / TR 9000 / TI 2500 ms``."""
        times = f"TE {self.te:g} / TR {self.tr:g}"
        if self.ti is not None:
            times += f" / TI {self.ti:g}" if self.ti2 is None else f" / TI1 {self.ti:g} / TI2 {self.ti2:g}"
        flip = f", flip {self.flip_deg:g} deg" if self.flip_deg is not None else ""
        return f"{self.name}: {self.sequence.replace('_', ' ')}, {times} ms{flip}"

    def with_values(self, te=None, tr=None, ti=None, ti2=None, flip_deg=None) -> "Preset":
        """The preset with the given values replaced (None keeps the preset's)."""
        given = {k: v for k, v in {"te": te, "tr": tr, "ti": ti, "ti2": ti2, "flip_deg": flip_deg}.items()
                 if v is not None}
        out = replace(self, **given)
        out.check()
        return out

    def check(self) -> None:
        """Raise a one-line ValueError for values the sequence cannot have, or times that
        can only be seconds (those of :class:`~napari_mr_reparam.acquisition.Acquisition`),
        and a value its sequence does not read (a TI without an inversion, a flip angle for
        a spin echo, a second TI for one inversion), naming it."""
        from .acquisition import SEQUENCE_READS

        reads = SEQUENCE_READS.get(self.sequence, ())
        kind = self.sequence.replace("_", " ")
        unused = {"ti": (self.ti, "has no inversion", "TI {:g} ms"),
                  "ti2": (self.ti2, "has no second inversion", "TI2 {:g} ms"),
                  "flip": (self.flip_deg, "reads no flip angle", "flip angle {:g} deg")}
        for key, (value, lacks, shown) in unused.items():
            if value is not None and key not in reads:
                raise ValueError(f"{self.name} is {kind}, which {lacks}: {shown.format(value)} would be unused; "
                                 "leave it out")
        if self.ti2 is not None and not self.ti2 < (self.ti or 0):
            raise ValueError(f"{self.name}: the second inversion time ({self.ti2:g} ms) must be shorter "
                             f"than the first ({self.ti:g} ms)")
        self.acquisition()

    def acquisition(self):
        """The preset as an :class:`~napari_mr_reparam.acquisition.Acquisition`."""
        from .acquisition import Acquisition

        return Acquisition(self.te, self.tr, self.sequence, self.ti, self.flip_deg, self.ti2)

    def render_arguments(self) -> dict:
        """Keywords for :meth:`~napari_mr_reparam.joint_result.JointMaps.render` (times in
        ms); ``acquisition()`` gives the same values as an ``Acquisition``, which the engine's
        ``predict`` takes."""
        return {"te_ms": self.te, "tr_ms": self.tr, "sequence": self.sequence, "ti_ms": self.ti,
                "flip_deg": self.flip_deg, "ti2_ms": self.ti2}


#: The presets, by name (times in ms).
PRESETS = {p.name: p for p in (
    Preset("T1w", "spin_echo", te=15, tr=500, what="T1-weighted spin echo: fat and white matter bright"),
    Preset("T2w", "spin_echo", te=100, tr=4000, what="T2-weighted spin echo: fluid bright"),
    Preset("PDw", "spin_echo", te=15, tr=3000, what="proton-density-weighted spin echo"),
    Preset("FLAIR", "inversion_recovery", te=120, tr=9000, ti=2500,
           what="fluid-attenuated inversion recovery: T2-weighted with CSF nulled"),
    Preset("STIR", "inversion_recovery", te=60, tr=4000, ti=160,
           what="short-tau inversion recovery: TI 160 ms nulls a T1 near 230 ms, fat as 1.5 T scanners "
                "see it (the tissue tables' fat, T1 300-375 ms, needs TI 210-260 ms)"),
    Preset("DIR", "double_inversion_recovery", te=25, tr=11000, ti=3400, ti2=400,
           what="double inversion recovery: CSF and white matter nulled, grey matter left (1.5 T: "
                "white matter T1 600 ms; at 3 T, 830 ms, TI 3700 and TI2 560 ms)"),
    Preset("MPRAGE", "mprage", te=3, tr=2300, ti=900, flip_deg=9,
           what="magnetization-prepared rapid gradient echo: 3-D T1-weighted"),
)}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (case-insensitive), or a one-line ValueError listing them."""
    for key, preset in PRESETS.items():
        if key.lower() == str(name).lower():
            return preset
    raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")


def input_preset_names() -> list[str]:
    """The presets an input can be acquired with: those of an input sequence
    (:data:`~napari_mr_reparam.physics.INPUT_SEQUENCES`)."""
    from .physics import INPUT_SEQUENCES

    return [name for name, p in PRESETS.items() if p.sequence in INPUT_SEQUENCES]


def get_input_preset(name: str) -> Preset:
    """The input preset called ``name`` (case-insensitive), or a one-line ValueError
    listing them."""
    names = input_preset_names()
    try:
        preset = get_preset(name)
    except ValueError:
        raise ValueError(f"unknown input preset {name!r}; input presets: {', '.join(names)}") from None
    if preset.name not in names:
        raise ValueError(f"{preset.name} ({preset.sequence.replace('_', ' ')}) is a target only: the models "
                         f"read no such input; input presets: {', '.join(names)}")
    return preset
