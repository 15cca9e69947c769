"""FreeSurfer's label codes: the brain structures of its look-up table as tissue fractions,
and the ranges of its parcels and of whole-head maps' non-brain classes. Segmentation
phantoms (:mod:`.phantoms.freesurfer`) render them; the readers (:mod:`.io`) tell a
segmentation from a scan by them."""

_WM, _GM, _CSF = "white_matter", "grey_matter", "csf"
#: Brain labels of FreeSurfer's look-up table -> tissue fractions.
BRAIN_LABELS: dict[int, dict[str, float]] = {
    **{k: {_WM: 1.0} for k in (2, 41, 7, 46, 77, 78, 79, 85, 251, 252, 253, 254, 255, 5001, 5002)},
    **{k: {_GM: 1.0} for k in (3, 42, 8, 47, 11, 50, 12, 51, 17, 53, 18, 54, 26, 58, 28, 60,
                               25, 57, 29, 61, 30, 62, 80, 81, 82, 96, 97, 98)},
    **{k: {_CSF: 1.0} for k in (4, 43, 5, 44, 14, 15, 24, 72)},
    **{k: {_GM: 0.7, _WM: 0.3} for k in (10, 49, 9, 48)},  # thalamus
    **{k: {_GM: 0.5, _WM: 0.5} for k in (13, 52)},  # pallidum
    **{k: {_CSF: 0.5, _GM: 0.5} for k in (31, 63, 136, 137, 163, 164)},  # choroid plexus
    16: {_WM: 0.8, _GM: 0.2},  # brain stem
}
#: Label ranges: aparc cortical parcels (grey matter), wmparc parcels (white matter).
CORTEX_PARCELS, WM_PARCELS = range(1000, 3000), range(3000, 5000)
#: Non-brain classes of whole-head maps.
EXTRA_LABELS = range(500, 600)


def known_code(label: int) -> bool:
    """Whether ``label`` is a brain structure or parcel this table maps to tissues."""
    return label in BRAIN_LABELS or label in CORTEX_PARCELS or label in WM_PARCELS
