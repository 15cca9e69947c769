"""Phantoms from segmentations: label maps and tissue fractions (phantoms/segmentation.py)."""

import numpy as np
import pytest

from napari_mr_reparam.phantoms import load_phantom, random_subject
from napari_mr_reparam.phantoms.fractions import maps_from_fractions
from napari_mr_reparam.phantoms.segmentation import load_segmentation
from napari_mr_reparam.tissues import LABELS, TISSUES, get_table
from napari_mr_reparam.volume_writing import save_volume


def brain_labels(shape=(48, 56, 52)) -> np.ndarray:
    """A 1 mm brain: white-matter core, grey-matter rind, a CSF ventricle, no head."""
    z, y, x = np.indices(shape, dtype=np.float32)
    centre = [(s - 1) / 2 for s in shape]
    r = np.sqrt(sum(((g - c) / (s / 2 - 4)) ** 2 for g, c, s in zip((z, y, x), centre, shape)))
    labels = np.zeros(shape, np.float32)
    labels[r < 1.0] = LABELS["grey_matter"]
    labels[r < 0.75] = LABELS["white_matter"]
    labels[r < 0.25] = LABELS["csf"]
    return labels


@pytest.fixture(scope="module")
def label_file(tmp_path_factory):
    return save_volume(tmp_path_factory.mktemp("seg") / "brain.nii.gz", brain_labels())


@pytest.fixture(scope="module")
def brain(label_file):
    return load_segmentation(label_file)


def test_a_brain_alone_gets_a_head_and_keeps_its_tissue_volume(brain):
    labels = brain_labels()
    assert brain.voxel_size_mm == (2.0, 2.0, 2.0)
    assert brain.name == "segmentation:brain.nii.gz[brainweb_1.5t]"
    # the procedural head wraps the brain: skull and skin around it, the grid grown to hold them
    assert brain.fractions["skull"].max() > 0.5 and brain.fractions["skin"].max() > 0.5
    assert all(n > s // 2 for n, s in zip(brain.shape, labels.shape))
    # 2 mm voxels average 8 of the 1 mm ones: tissue volume is kept (mm^3)
    for tissue in ("grey_matter", "white_matter"):
        assert brain.fractions[tissue].sum() * 8 == pytest.approx((labels == LABELS[tissue]).sum(), rel=1e-3)
    # ...and the border voxels become mixtures, as a scan of the segmented brain has them
    gm = brain.fractions["grey_matter"]
    assert np.any((gm > 0.2) & (gm < 0.8))
    mask = brain.mask()
    assert mask.sum() * 8 == pytest.approx((labels > 0).sum(), rel=0.1)
    assert np.all(brain.fractions["skull"][mask] < 0.5)


def test_maps_are_the_tables_mixtures(brain, label_file):
    table = get_table("3t")
    expected = maps_from_fractions(brain.fractions, table)
    other = load_segmentation(label_file, table="3t")
    for key in ("pd", "t1", "t2", "t2star"):
        np.testing.assert_allclose(getattr(other, key), expected[key], rtol=1e-6)
    pure_wm = brain.fractions["white_matter"] > 0.999
    assert np.allclose(other.t1[pure_wm], table["white_matter"].t1)


def test_a_whole_head_of_fractions_is_kept_as_it_is(tmp_path):
    rng = np.random.default_rng(0)
    shape = (10, 12, 14)
    raw = rng.uniform(0, 1, (len(TISSUES), *shape)).astype(np.float32)
    raw[1] += 3.0  # mostly grey matter, so the file holds a brain
    fractions = {t: raw[i] / raw.sum(axis=0) for i, t in enumerate(TISSUES)}
    path = tmp_path / "head.npz"
    np.savez(path, **fractions, voxel_size_mm=np.array([2.0, 2.0, 2.0]))
    head = load_segmentation(path, table="mrilab")
    assert head.shape == shape
    expected = maps_from_fractions(fractions, get_table("mrilab"))
    np.testing.assert_allclose(head.t2, expected["t2"], rtol=1e-5)


def test_a_4d_nifti_of_fractions_reads_as_the_label_map_does(label_file, brain, tmp_path):
    import nibabel as nib

    img = nib.load(str(label_file))
    labels = np.asarray(img.dataobj)
    frames = np.stack([(labels == LABELS[t]).astype(np.float32) for t in TISSUES[:3]], axis=-1)
    path = tmp_path / "pve.nii.gz"  # CSF, grey, white matter: FAST's pve_0..2 merged
    nib.save(nib.Nifti1Image(frames, img.affine), str(path))
    fuzzy = load_segmentation(path)
    assert fuzzy.shape == brain.shape
    for tissue in TISSUES:
        np.testing.assert_array_equal(fuzzy.fractions[tissue], brain.fractions[tissue])
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, len(TISSUES) + 1), np.float32), np.eye(4)), str(path))
    with pytest.raises(ValueError, match="up to 9"):
        load_segmentation(path)


def test_voxels_that_do_not_divide_two_mm_are_resampled(tmp_path):
    labels = brain_labels((30, 36, 34))
    fractions = {t: (labels == LABELS[t]).astype(np.float32) for t in ("csf", "grey_matter", "white_matter")}
    path = tmp_path / "brain15.npz"
    np.savez(path, **fractions, voxel_size_mm=np.array([1.5, 1.5, 1.5]))
    small = load_segmentation(path)  # 1.5 mm -> 2 mm: no whole blocks
    gm = small.fractions["grey_matter"]
    assert gm.max() <= 1.0 and gm.min() >= 0.0
    # the brain's volume (mm^3) survives the resampling to within a few per cent
    assert gm.sum() * 8 == pytest.approx(fractions["grey_matter"].sum() * 1.5**3, rel=0.05)
    with pytest.raises(ValueError, match="on 2 mm voxels only"):
        load_segmentation(path, voxel_mm=4.0)


def test_an_anisotropic_label_map_is_resampled(tmp_path):
    import nibabel as nib

    labels = np.zeros((40, 44, 14), np.int16)  # RAS voxel order, 1 x 1 x 3 mm
    labels[8:32, 8:36, 3:11] = LABELS["white_matter"]
    path = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    phantom = load_segmentation(path)
    wm = phantom.fractions["white_matter"]
    assert wm.max() > 0.5 and wm.min() >= 0.0
    assert wm.sum() * 8 == pytest.approx((labels > 0).sum() * 3, rel=0.1)


def test_random_subjects_of_a_segmentation_draw_tables(brain):
    names = set()
    for seed in range(6):
        subject = random_subject(brain, seed, tables=["mrilab", "3t"], value_jitter=0.0)
        names.add(subject.name)
        table = get_table(subject.name.split("[")[1].split("]")[0])
        # the ventricle's pure CSF carries the drawn table's T2 (no jitter asked)
        assert subject.t2[subject.mask()].max() == pytest.approx(table["csf"].t2, rel=1e-3)
    assert {n.split("+")[0] for n in names} == {"segmentation:brain.nii.gz[mrilab]",
                                                 "segmentation:brain.nii.gz[3t]"}
    sharp = random_subject(brain, 0, sharpening=16.0, sharpening_min=16.0, csf_expansion=2.0)
    assert sharp.shape == brain.shape
    with pytest.raises(ValueError, match="MNI152 head only"):
        random_subject(brain, 0, sharpening=4.0, fine_brain=True)


def test_the_spec_loads_a_segmentation(label_file):
    phantom = load_phantom(f"segmentation:{label_file}", table="3t")
    assert phantom.name.endswith("[3t]") and phantom.tissue_table == "3t"
    with pytest.raises(ValueError, match="needs a file"):
        load_phantom("segmentation:")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: save_volume(p / "l.nii.gz", np.full((8, 8, 8), 12.0)), "unknown labels"),
    (lambda p: save_volume(p / "l.nii.gz", np.full((8, 8, 8), 1.5)), "whole numbers"),
    (lambda p: save_volume(p / "l.nii.gz", np.full((8, 8, 8), float(LABELS["skull"]))), "not a brain"),
    (lambda p: _npz(p / "f.npz", grey_matter=np.full((4, 4, 4), np.nan)), "finite"),
    (lambda p: _npz(p / "f.npz", grey_matter=np.full((4, 4, 4), 1.5)), "within 0-1"),
    (lambda p: _npz(p / "f.npz", gray=np.ones((4, 4, 4))), "unknown tissues"),
    (lambda p: _npz(p / "f.npz", grey_matter=np.ones((4, 4, 4)), csf=np.ones((4, 4, 4))), "sum past 1"),
    (lambda p: _npz(p / "f.npz", grey_matter=np.ones((4, 4))), "3-D"),
    (lambda p: _npz(p / "f.npz", grey_matter=np.ones((4, 4, 4)), voxel_size_mm=np.array([1.0, 0.0, 1.0])),
     "voxel_size_mm"),
    (lambda p: (p / "bad.npz").write_bytes(b"not a zip at all") and p / "bad.npz", "not a readable"),
    (lambda p: (p / "bad.nii.gz").write_bytes(b"\x1f\x8b truncated") and p / "bad.nii.gz", "not a readable"),
    (lambda p: (p / "seg.mgz").write_bytes(b"data") and p / "seg.mgz", "NIfTI file .* or an .npz"),
])
def test_bad_segmentations_get_one_line_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        load_segmentation(path)
    assert "\n" not in str(info.value) and path.name in str(info.value)


def test_a_missing_segmentation(tmp_path):
    with pytest.raises(FileNotFoundError, match="segmentation not found"):
        load_segmentation(tmp_path / "none.nii.gz")
