"""FreeSurfer-labelled segmentations as phantoms (phantoms/freesurfer.py)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_mr_reparam.phantoms import load_phantom
from napari_mr_reparam.phantoms.freesurfer import (EXTRA_DEFAULT, HELD_OUT, NON_BRAIN, anatomy_files,
                                                   compose, label_fractions, load_freesurfer,
                                                   random_extra_rule, read_labels, read_npz_array)

ANATOMY = Path(__file__).resolve().parents[2] / "shared" / "anatomy"


def aseg(shape=(48, 56, 52), head=False) -> np.ndarray:
    """A 1 mm FreeSurfer-style label map in RAS voxel order: left and right hemispheres
    (white matter 2/41 inside cortex 3/42), a ventricle (4), a thalamus (10) and, for a
    whole head, bone (515) and scalp (507, 511) shells as SynthSeg's maps have them."""
    grid = np.indices(shape, dtype=np.float32)
    centre = [(s - 1) / 2 for s in shape]
    r = np.sqrt(sum(((g - c) / (s / 2 - 2)) ** 2 for g, c, s in zip(grid, centre, shape)))
    left = grid[0] < centre[0]  # RAS: x increases to the right
    labels = np.zeros(shape, np.int32)
    if head:
        labels[r < 1.0] = 511
        labels[r < 0.93] = 507
        labels[r < 0.85] = 515
    labels[r < 0.78] = np.where(left, 3, 42)[r < 0.78]
    labels[r < 0.6] = np.where(left, 2, 41)[r < 0.6]
    labels[r < 0.25] = 10
    labels[r < 0.15] = 4
    return labels


def save(path: Path, labels: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    affine = np.diag([*zooms, 1.0])
    cls = nib.MGHImage if path.suffix == ".mgz" else nib.Nifti1Image
    nib.save(cls(labels.astype(np.int32), affine), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    return {"brain": save(root / "aseg.mgz", aseg()),
            "head": save(root / "head_seg.nii.gz", aseg(head=True))}


def test_labels_become_tissue_fractions():
    labels = np.array([[[0, 2, 41, 3, 1035, 2011, 4, 24, 16, 10, 31, 3001, 251, 13]]])
    brain, extra = label_fractions(labels)
    wm, gm, csf = (brain[t][0, 0] for t in ("white_matter", "grey_matter", "csf"))
    np.testing.assert_allclose(wm, [0, 1, 1, 0, 0, 0, 0, 0, 0.8, 0.3, 0, 1, 1, 0.5])
    np.testing.assert_allclose(gm, [0, 0, 0, 1, 1, 1, 0, 0, 0.2, 0.7, 0.5, 0, 0, 0.5])
    np.testing.assert_allclose(csf, [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0.5, 0, 0, 0])
    assert extra == {}


def test_unknown_labels_are_refused_by_number():
    with pytest.raises(ValueError, match=r"labels \[7777\]"):
        label_fractions(np.array([[[0, 2, 7777]]]), "x.mgz")


def test_a_brain_alone_gets_a_head_and_its_tissue_volume(files):
    phantom = load_phantom(f"freesurfer:{files['brain']}")
    assert phantom.name == "freesurfer:aseg.mgz[brainweb_1.5t]"
    assert phantom.voxel_size_mm == (2.0, 2.0, 2.0)
    assert phantom.fractions["skull"].max() > 0.5 and phantom.fractions["skin"].max() > 0.5
    labels = aseg()
    gm = np.isin(labels, (3, 42)).sum() + 0.7 * (labels == 10).sum()
    assert phantom.fractions["grey_matter"].sum() * 8 == pytest.approx(gm, rel=1e-3)
    assert phantom.extra_classes is None


def test_mgz_and_nifti_read_alike_in_stack_order(tmp_path):
    labels = aseg()
    a, spacing = read_labels(save(tmp_path / "a.mgz", labels, (1.0, 1.0, 2.0)))
    b, _ = read_labels(save(tmp_path / "b.nii.gz", labels, (1.0, 1.0, 2.0)))
    np.testing.assert_array_equal(a, b)
    assert spacing == (2.0, 1.0, 1.0)  # stack (z, y, x) from RAS (x, y, z)
    assert a.shape == (labels.shape[2], labels.shape[1], labels.shape[0])
    # x runs across: the left hemisphere (label 2) lies at low x in RAS, so high stack x
    # (the stack shows the patient's right on the left of the image, as radiology does)
    left_x = np.nonzero(a == 2)[2].mean()
    right_x = np.nonzero(a == 41)[2].mean()
    assert left_x != right_x


def test_voxelmorph_npz_is_read_in_freesurfer_conformed_orientation(tmp_path):
    ras = aseg((40, 44, 36))
    lia = np.transpose(ras[::-1, :, ::-1], (0, 2, 1))  # RAS -> voxel axes L, I, A
    np.savez(tmp_path / "scan.npz", vol=np.zeros(3), seg=lia)
    from_npz, _ = read_labels(tmp_path / "scan.npz")
    from_ras, _ = read_labels(save(tmp_path / "scan.nii.gz", ras))
    np.testing.assert_array_equal(from_npz, from_ras)
    np.savez(tmp_path / "novol.npz", vol=np.zeros(3))
    with pytest.raises(ValueError, match="no 'seg'"):
        read_labels(tmp_path / "novol.npz")


def test_a_voxelmorph_scan_is_stacked_as_its_labels_are(tmp_path):
    seg = np.random.default_rng(0).integers(0, 5, (6, 7, 8))
    np.savez(tmp_path / "scan.npz", vol=seg * 0.1, seg=seg)
    labels, _ = read_labels(tmp_path / "scan.npz")
    np.testing.assert_allclose(read_npz_array(tmp_path / "scan.npz", "vol"), labels * 0.1)
    with pytest.raises(ValueError, match="no 'image'"):
        read_npz_array(tmp_path / "scan.npz", "image")


def test_whole_head_classes_take_the_default_rule_and_can_be_stripped(files):
    head = load_freesurfer(files["head"])
    assert set(head.extra_classes) == {507, 511, 515}
    assert {k: t for k, (t, _) in head.extra_classes.items()} == {k: EXTRA_DEFAULT[k] for k in (507, 511, 515)}
    assert head.fractions["skull"].sum() == pytest.approx(
        head.extra_classes[515][1].astype(np.float32).sum(), rel=1e-4)
    stripped = load_freesurfer(files["head"], skull_strip=True)
    assert stripped.name.endswith("-stripped[brainweb_1.5t]")
    for tissue in ("skull", "muscle", "fat"):
        assert stripped.fractions[tissue].max() == 0
    assert stripped.pd[~stripped.mask()].max() < head.pd[~head.mask()].max()


def test_a_rule_moves_a_class_to_another_tissue(files):
    head = load_freesurfer(files["head"], extra_rule={515: "marrow"})
    assert head.fractions["skull"].max() == 0 and head.fractions["marrow"].max() > 0.5
    rule = random_extra_rule([507, 511, 515], np.random.default_rng(0), keep=0.0)
    assert set(rule) == {507, 511, 515} and set(rule.values()) <= set(NON_BRAIN)
    kept = random_extra_rule([507, 511, 515], np.random.default_rng(0), keep=1.0)
    assert kept == {k: EXTRA_DEFAULT[k] for k in kept}
    brain = {"csf": np.zeros(2, np.float32), "grey_matter": np.ones(2, np.float32) / 2,
             "white_matter": np.zeros(2, np.float32)}
    out = compose(brain, {515: np.full(2, 0.5, np.float16)}, {515: "fat"})
    np.testing.assert_allclose(out["fat"], 0.5)


def test_bad_files_get_one_line_messages(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_freesurfer(tmp_path / "none.mgz")
    (tmp_path / "bad.mgz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.mgz: not a readable label map"):
        load_freesurfer(tmp_path / "bad.mgz")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ValueError, match="x.txt: a FreeSurfer segmentation is"):
        load_freesurfer(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="not a brain"):
        load_freesurfer(save(tmp_path / "csf_seg.nii.gz", np.where(aseg() > 0, 24, 0)))


def test_held_out_subjects_are_kept_apart_from_training(tmp_path):
    for rel in ("synthseg/training_seg_01.nii.gz", "synthseg/training_seg_17.nii.gz",
                "synthsr/brain5_labels.nii.gz", "voxelmorph/test_scan.npz"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    train = [p.relative_to(tmp_path).as_posix() for p in anatomy_files(tmp_path)]
    held = [p.relative_to(tmp_path).as_posix() for p in anatomy_files(tmp_path, held_out=True)]
    assert train == ["synthseg/training_seg_01.nii.gz", "voxelmorph/test_scan.npz"]
    assert held == ["synthseg/training_seg_17.nii.gz", "synthsr/brain5_labels.nii.gz"]
    assert set(held) <= set(HELD_OUT)


def test_the_shared_anatomy_reads_as_heads_and_brains():
    if not ANATOMY.is_dir():
        pytest.skip(f"anatomy label maps not found at {ANATOMY}: this test needs ../shared/")
    assert len(anatomy_files(ANATOMY, held_out=True)) == len(HELD_OUT)
    head = load_freesurfer(ANATOMY / "synthseg" / "training_seg_01.nii.gz")
    brain = head.mask()
    assert 1.0e6 < brain.sum() * 8 < 2.0e6  # mm^3: an adult brain with its CSF
    assert head.extra_classes and head.fractions["skull"].sum() > 0
    real = load_freesurfer(ANATOMY / "voxelmorph" / "test_scan.npz")
    assert real.fractions["skin"].max() > 0.5  # a brain alone, given a head


def test_training_draws_give_non_brain_classes_other_tissues_and_zero_keeps_the_rule(files):
    from napari_mr_reparam.phantoms import random_subject

    head = load_freesurfer(files["head"])
    kept = random_subject(head, 0, tables=["brainweb_1.5t"], deform_mm=0.0, value_jitter=0.0,
                          max_scale=0.0, max_rotation_deg=0.0)
    moved = [random_subject(head, s, tables=["brainweb_1.5t"], deform_mm=0.0, value_jitter=0.0,
                            max_scale=0.0, max_rotation_deg=0.0, extra_reassign=1.0) for s in range(4)]
    np.testing.assert_allclose(kept.t1, head.t1, atol=1e-3)
    assert any(not np.allclose(m.t1[~head.mask()], head.t1[~head.mask()]) for m in moved)
    brain = head.mask() & (head.fractions["skull"] + head.fractions["muscle"] + head.fractions["fat"] < 1e-3)
    for m in moved:  # the brain keeps its tissue
        np.testing.assert_allclose(m.t1[brain], head.t1[brain], rtol=1e-4)
