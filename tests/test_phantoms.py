import numpy as np
import pytest
from helpers import mrilab_path

from napari_mr_reparam import physics
from napari_mr_reparam.phantoms import load_phantom, random_bias_field, random_subject
from napari_mr_reparam.phantoms.mni152 import mni152_fractions


@pytest.fixture(scope="module")
def mni():
    return load_phantom("mni152")


def test_mni152_maps_ranges_and_fractions(mni):
    assert mni.pd.ndim == 3 and mni.pd.dtype == np.float32
    assert 0 <= mni.pd.min() and mni.pd.max() <= 1
    assert 0 <= mni.t1.min() and mni.t1.max() <= 5000
    assert 0 <= mni.t2.min() and mni.t2.max() <= 2500
    brain = mni.mask()
    litres = brain.sum() * np.prod(mni.voxel_size_mm) / 1e6
    assert 1.0 < litres < 2.1
    fr = mni152_fractions()
    for tissue, lo, hi in (("grey_matter", 0.25, 0.6), ("white_matter", 0.2, 0.6), ("csf", 0.05, 0.4)):
        share = fr[tissue][brain].sum() / brain.sum()
        assert lo < share < hi, (tissue, share)


def test_mni152_has_a_skull_ring(mni):
    k = mni.shape[0] // 2 + 10
    row = mni.shape[1] // 2
    profile = mni.pd[k, row, mni.shape[2] // 2:]  # centre outwards
    brain_end = np.flatnonzero(mni.mask()[k, row, mni.shape[2] // 2:])[-1]
    outside = profile[brain_end:]
    skull = int(np.argmax(outside < 0.5))
    assert skull > 0 and outside[skull] < 0.5, "a low-PD (skull) layer follows the brain"
    assert outside[skull:].max() > 0.8, "and bright scalp lies outside it"


def test_mni152_contrast_follows_physics(mni):
    fr = mni152_fractions()
    csf, wm = fr["csf"] > 0.9, fr["white_matter"] > 0.9
    t2w = physics.spin_echo(mni.pd, mni.t1, mni.t2, 100.0, 5000.0)
    t1w = physics.spin_echo(mni.pd, mni.t1, mni.t2, 15.0, 500.0)
    assert t2w[csf].mean() > t2w[wm].mean()
    assert t1w[csf].mean() < t1w[wm].mean()


def test_tissue_table_switch():
    ph = load_phantom("mni152", table="mrilab")
    wm = mni152_fractions()["white_matter"] > 0.99
    assert np.median(ph.t1[wm]) == pytest.approx(600, abs=25)  # partial volume with GM


def test_mrilab_phantom():
    ph = load_phantom(f"mrilab:{mrilab_path()}")
    assert ph.shape == (90, 108, 90)
    assert ph.t1.max() == pytest.approx(4500)
    first, last = ph.head_slices()
    assert last - first > 80
    assert 0.1 < ph.mask().mean() < 0.5


def test_bad_phantom_specs(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_phantom(f"mrilab:{tmp_path / 'none.npz'}")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match="not an MRiLab phantom"):
        load_phantom(f"mrilab:{bad}")
    with pytest.raises(ValueError, match="unknown phantom"):
        load_phantom("shepp")
    with pytest.raises(ValueError, match="needs a file"):
        load_phantom("mrilab")


def test_random_subject_is_seeded_and_sane(mni):
    a = random_subject(mni, 5, tables=["3t", "brainweb_1.5t"])
    b = random_subject(mni, 5, tables=["3t", "brainweb_1.5t"])
    c = random_subject(mni, 6)
    assert np.array_equal(a.t1, b.t1) and np.array_equal(a.pd, b.pd)
    assert not np.array_equal(a.t1, c.t1)
    assert a.shape == mni.shape and a.t1.dtype == np.float32
    assert 0 <= a.pd.min() and a.pd.max() <= 1 and (a.t2star <= a.t2 + 1e-3).all()
    assert 0.8 < a.mask().sum() / mni.mask().sum() < 1.2


def test_bias_field():
    field = random_bias_field((20, 30, 30), np.random.default_rng(0), 0.2)
    assert field.shape == (20, 30, 30)
    assert 0.8 - 1e-6 <= field.min() and field.max() <= 1.2 + 1e-6
    assert field.mean() == pytest.approx(1.0, abs=0.1)
