"""Tissue relaxation tables: T1, T2, T2* in milliseconds and relative proton density.

Three tables are provided, each with its source:

``brainweb_1.5t``
    The BrainWeb simulator's 1.5 T values (``tissue_mr_parameters.txt``, as listed in
    J. Fessler's MIRT ``mri_brainweb_params.m``).
``mrilab``
    The values of MRiLab's brain phantom (``Resources/Phantom Parameter Table.xlsx``,
    checked against the voxel maps of the phantom: T2* is T2 / 2 there).
``3t``
    Literature 3 T values: Wansapura et al., JMRI 1999 and Stanisz et al., MRM 2005
    (mid-points of the reported ranges). PD is taken from BrainWeb.

Tissues that a source does not tabulate are filled in as stated in ``notes``; such
entries are marked ``assumed=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Tissue names, in label order (label 0 is background).
TISSUES = (
    "csf",
    "grey_matter",
    "white_matter",
    "fat",
    "muscle",
    "skin",
    "skull",
    "marrow",
    "connective",
)
LABELS = {name: i + 1 for i, name in enumerate(TISSUES)}


@dataclass(frozen=True)
class Tissue:
    """MR properties of one tissue. Times in milliseconds, ``pd`` relative (0-1)."""

    t1: float
    t2: float
    t2star: float
    pd: float
    assumed: bool = False


@dataclass(frozen=True)
class TissueTable:
    """A named set of tissue properties with its source and field strength."""

    name: str
    field_t: float
    source: str
    tissues: dict[str, Tissue]
    notes: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, tissue: str) -> Tissue:
        return self.tissues[tissue]


BRAINWEB_1P5T = TissueTable(
    name="brainweb_1.5t",
    field_t=1.5,
    source="BrainWeb simulator tissue_mr_parameters.txt (via MIRT mri_brainweb_params.m)",
    tissues={
        "csf": Tissue(2569, 329, 58, 1.0),
        "grey_matter": Tissue(833, 83, 69, 0.86),
        "white_matter": Tissue(500, 70, 61, 0.77),
        "fat": Tissue(350, 70, 58, 1.0),
        "muscle": Tissue(900, 47, 30, 1.0),
        "skin": Tissue(2569, 329, 58, 1.0),
        "skull": Tissue(0, 0, 0, 0.0),
        "marrow": Tissue(350, 70, 58, 1.0, assumed=True),
        "connective": Tissue(500, 70, 61, 0.77),
    },
    notes="BrainWeb gives no marrow values: fatty (yellow) marrow is taken as fat.",
    aliases=("brainweb", "1.5t"),
)

MRILAB = TissueTable(
    name="mrilab",
    field_t=1.5,
    source="MRiLab Resources/Phantom Parameter Table.xlsx, checked against the brain phantom maps",
    tissues={
        "csf": Tissue(4500, 2200, 1100, 1.0),
        "grey_matter": Tissue(950, 100, 50, 0.80),
        "white_matter": Tissue(600, 80, 40, 0.65),
        "fat": Tissue(300, 30, 15, 0.60, assumed=True),
        "muscle": Tissue(1100, 35, 17.5, 0.70),
        "skin": Tissue(300, 30, 15, 0.60),
        "skull": Tissue(100, 10, 5, 0.05),
        "marrow": Tissue(300, 30, 15, 0.60, assumed=True),
        "connective": Tissue(1000, 42, 21, 0.75),
    },
    notes="MRiLab's phantom models no fat or marrow: both take its skin (scalp) values.",
)

THREE_T = TissueTable(
    name="3t",
    field_t=3.0,
    source="Wansapura et al. JMRI 1999; Stanisz et al. MRM 2005 (range mid-points); PD from BrainWeb",
    tissues={
        "csf": Tissue(4160, 1650, 990, 1.0),
        "grey_matter": Tissue(1445, 96, 58, 0.86),
        "white_matter": Tissue(830, 78, 47, 0.77),
        "fat": Tissue(374, 125, 75, 1.0),
        "muscle": Tissue(1256, 45, 27, 1.0),
        "skin": Tissue(1256, 45, 27, 1.0, assumed=True),
        "skull": Tissue(0, 0, 0, 0.0),
        "marrow": Tissue(374, 125, 75, 1.0, assumed=True),
        "connective": Tissue(830, 78, 47, 0.77, assumed=True),
    },
    notes="T2* is not tabulated at 3 T here: taken as 0.6 T2. Skin as muscle, marrow as fat, "
    "connective tissue as white matter.",
)

TABLES = {t.name: t for t in (BRAINWEB_1P5T, MRILAB, THREE_T)}
_ALIASES = {alias: t for t in TABLES.values() for alias in t.aliases}


def get_table(name: str) -> TissueTable:
    """Return a tissue table by name (``brainweb_1.5t``, ``mrilab`` or ``3t``)."""
    key = name.lower()
    table = TABLES.get(key) or _ALIASES.get(key)
    if table is None:
        raise ValueError(f"unknown tissue table {name!r}; known: {', '.join(TABLES)}")
    return table
