import numpy as np
import pytest
from scipy import ndimage
from helpers import mrilab_path, tiny_phantom

from napari_mr_reparam import physics
from napari_mr_reparam.phantoms import (Phantom, load_phantom, random_bias_field,
                                        random_noise_level, random_subject)
from napari_mr_reparam.phantoms.fractions import BRAIN_TISSUES, block_mean, maps_from_fractions, sharpen_fractions
from napari_mr_reparam.phantoms.mni152 import mni152_fine_brain, mni152_fractions
from napari_mr_reparam.phantoms.random_subject import add_sulci
from napari_mr_reparam.tissues import TISSUES, get_table

MAPS = ("pd", "t1", "t2", "t2star")


@pytest.fixture(scope="module")
def mni():
    return load_phantom("mni152")


def _in_range(ph):
    assert 0 <= ph.pd.min() and ph.pd.max() <= 1
    assert 0 <= ph.t1.min() and ph.t1.max() <= 5000
    assert 0 <= ph.t2.min() and ph.t2.max() <= 2500
    assert 0 <= ph.t2star.min() and (ph.t2star <= ph.t2 + 1e-3).all()


def test_mni152_maps_and_ranges(mni):
    assert mni.pd.ndim == 3 and mni.voxel_size_mm == (2.0, 2.0, 2.0)
    assert all(getattr(mni, k).dtype == np.float32 for k in MAPS)
    assert 80 <= mni.shape[0] <= 120 and 90 <= mni.shape[1] <= 140 and 80 <= mni.shape[2] <= 130
    assert mni.name == "mni152[brainweb_1.5t]"
    _in_range(mni)


def test_mni152_tissue_fractions(mni):
    brain = mni.mask()
    # GM + WM of the ICBM152 2009 template alone hold ~1.7 l (it is larger than an
    # average brain), so the brain mask (with the CSF inside the hull) is ~1.8 l.
    litres = brain.sum() * np.prod(mni.voxel_size_mm) / 1e6
    assert 1.2 < litres < 2.0
    fr = mni152_fractions()
    assert set(fr) == set(TISSUES)
    for tissue, lo, hi in (("grey_matter", 0.25, 0.6), ("white_matter", 0.25, 0.6), ("csf", 0.05, 0.4)):
        share = fr[tissue][brain].sum() / brain.sum()
        assert lo < share < hi, (tissue, share)
    total = sum(fr.values())
    assert total.max() <= 1 + 1e-5 and total[0].max() > 0.5  # cut inferiorly, not padded
    for tissue in ("skull", "marrow", "muscle", "fat", "skin"):
        assert fr[tissue].sum() > 1000, tissue


def test_mni152_head_fits_the_grid(mni):
    tissue = mni.pd > 0
    assert not tissue[-1].any(), "the top of the head is inside the grid"
    for axis in (1, 2):
        edges = np.take(tissue, [0, -1], axis=axis)
        assert not edges.any(), f"the head touches the grid edge on axis {axis}"


def test_mni152_has_a_skull_ring(mni):
    k = mni.shape[0] // 2 + 10
    row = mni.shape[1] // 2
    profile = mni.pd[k, row, mni.shape[2] // 2:]  # centre outwards
    brain_end = np.flatnonzero(mni.mask()[k, row, mni.shape[2] // 2:])[-1]
    outside = profile[brain_end:]
    skull = int(np.argmax(outside < 0.5))
    assert skull > 0 and outside[skull] < 0.5, "a low-PD (skull) layer follows the brain"
    assert outside[skull:].max() > 0.8, "and bright scalp lies outside it"
    assert outside[-1] == 0, "then air"


def test_mni152_contrast_follows_physics(mni):
    fr = mni152_fractions()
    csf, wm = fr["csf"] > 0.9, fr["white_matter"] > 0.9
    t2w = physics.spin_echo(mni.pd, mni.t1, mni.t2, 100.0, 5000.0)
    t1w = physics.spin_echo(mni.pd, mni.t1, mni.t2, 15.0, 500.0)
    assert t2w[csf].mean() > t2w[wm].mean()
    assert t1w[csf].mean() < t1w[wm].mean()


def test_tissue_table_switch(mni):
    ph = load_phantom("mni152", table="mrilab")
    assert ph.name == "mni152[mrilab]" and ph.shape == mni.shape
    wm = mni152_fractions()["white_matter"] > 0.99
    assert np.median(ph.t1[wm]) == pytest.approx(600, abs=25)  # up to 1 % GM/CSF mixed in
    with pytest.raises(ValueError, match="unknown tissue table"):
        load_phantom("mni152", table="7t")


def test_maps_from_fractions_mixes_and_normalizes():
    table = get_table("brainweb_1.5t")
    gm = np.array([0.0, 0.5, 0.25], np.float32)
    wm = np.array([0.0, 0.5, 0.25], np.float32)
    maps = maps_from_fractions({"grey_matter": gm, "white_matter": wm}, table)
    assert maps["t1"][0] == 0 and maps["pd"][0] == 0
    gm_t, wm_t = table["grey_matter"], table["white_matter"]
    # times: geometric mean weighted by each tissue's share of the water (fraction x PD)
    share = gm_t.pd / (gm_t.pd + wm_t.pd)
    mean_t1 = np.exp(share * np.log(gm_t.t1) + (1 - share) * np.log(wm_t.t1))
    assert maps["t1"][1] == pytest.approx(mean_t1, rel=1e-5) and maps["t1"][2] == pytest.approx(mean_t1, rel=1e-5)
    assert maps["pd"][2] == pytest.approx(maps["pd"][1] / 2)  # half the voxel is air


def test_mixed_voxel_keeps_grey_matter_t2_near_its_own():
    """A tenth of CSF in a grey-matter voxel does not make its map's T2 CSF-like."""
    table = get_table("3t")
    maps = maps_from_fractions({"grey_matter": np.array([0.9], np.float32),
                                "csf": np.array([0.1], np.float32)}, table)
    assert table["grey_matter"].t2 < maps["t2"][0] < 1.5 * table["grey_matter"].t2


def _two_voxel_mixture():
    from napari_mr_reparam.phantoms.mixture import mixture_of

    table = get_table("3t")
    fractions = {"grey_matter": np.array([[[1.0, 0.5, 0.25]]], np.float32),
                 "csf": np.array([[[0.0, 0.5, 0.25]]], np.float32)}
    return table, mixture_of(fractions, table)


def test_mixture_renders_the_sum_of_its_tissues_signals():
    from napari_mr_reparam import physics
    from napari_mr_reparam.simulate import Acquisition

    table, mixture = _two_voxel_mixture()
    for acq in (Acquisition(800.0, 6000.0), Acquisition(120.0, 9000.0, "inversion_recovery", ti_ms=2500.0)):
        gm, csf = (float(physics.render(acq.sequence, t.pd, t.t1, t.t2, acq.te_ms, acq.tr_ms, ti=acq.ti_ms))
                   for t in (table["grey_matter"], table["csf"]))
        signal = mixture.render(acq)[0, 0]
        assert signal[0] == pytest.approx(gm, rel=1e-5)
        assert signal[1] == pytest.approx(0.5 * gm + 0.5 * csf, rel=1e-5)
        assert signal[2] == pytest.approx(signal[1] / 2, rel=1e-5)  # half the voxel is air
    # a T2-mixed single compartment is far brighter at a long echo than the two pools
    maps_signal = physics.render("spin_echo", 1.0, 1.0, 0.9 * table["grey_matter"].t2 + 0.1 * table["csf"].t2,
                                 800.0, 6000.0)
    assert float(maps_signal) > 5 * float(np.exp(-800.0 / table["grey_matter"].t2))


def test_mixture_factors_scale_every_tissue_and_are_bounded():
    from napari_mr_reparam.phantoms.mixture import T2_MAX_MS
    from napari_mr_reparam.simulate import Acquisition

    table, mixture = _two_voxel_mixture()
    acq = Acquisition(100.0, 5000.0)
    ones = np.ones((1, 1, 3), np.float32)
    same = mixture.with_factors({"pd": ones, "t1": ones, "t2": ones, "t2star": ones}).render(acq)
    np.testing.assert_allclose(same, mixture.render(acq), rtol=1e-6)
    brighter = mixture.with_factors({"pd": 0.5 * ones}).render(acq)
    np.testing.assert_allclose(brighter, 0.5 * mixture.render(acq), rtol=1e-5)
    long = mixture.with_factors({"t2": 100 * ones}).render(acq)  # clipped at T2_MAX_MS
    gm = table["grey_matter"]
    assert long[0, 0, 0] == pytest.approx(gm.pd * (1 - np.exp(-5000 / gm.t1)) * np.exp(-100 / T2_MAX_MS), rel=1e-4)


def test_phantoms_from_fractions_render_as_mixtures_and_with_maps_as_maps():
    from napari_mr_reparam.simulate import Acquisition, render_slices

    ph = load_phantom("mni152", table="3t")
    assert ph.mixture is not None
    acq, z = Acquisition(800.0, 6000.0), ph.shape[0] // 2
    mixed, single = render_slices(ph, acq, [z]), render_slices(ph.with_maps(), acq, [z])
    assert ph.with_maps().mixture is None
    assert mixed.mean() > 1.1 * single.mean()  # CSF partial volume keeps its own long T2
    pure = (sum(f[z] for f in ph.fractions.values()) > 0.999) & (ph.fractions["white_matter"][z] > 0.999)
    short = Acquisition(20.0, 600.0)  # one tissue: the same signal either way
    np.testing.assert_allclose(render_slices(ph, short, [z])[0][pure],
                               render_slices(ph.with_maps(), short, [z])[0][pure], rtol=2e-3)


def test_sharpen_fractions_moves_voxels_toward_their_main_tissue():
    fractions = {"grey_matter": np.array([0.6, 0.5, 0.0, 0.3], np.float32),
                 "white_matter": np.array([0.3, 0.5, 0.0, 0.1], np.float32),
                 "csf": np.array([0.1, 0.0, 0.0, 0.0], np.float32)}
    sharp = sharpen_fractions(fractions, 4.0)
    total = sum(fractions.values())
    assert np.allclose(sum(sharp.values()), total, atol=1e-6)  # totals kept, air stays air
    assert sharp["grey_matter"][0] > 0.9 and sharp["csf"][0] < 0.01
    assert sharp["grey_matter"][1] == pytest.approx(0.5)  # a tie stays a tie
    assert sharp["grey_matter"][3] == pytest.approx(0.4 * 81 / 82, rel=1e-5)  # part-air voxel
    tilted = sharpen_fractions(fractions, 4.0, {"white_matter": np.full(4, 2.0)})
    assert tilted["white_matter"][1] > 0.9  # the weight breaks the tie toward white matter
    same = sharpen_fractions(fractions, 1.0)
    assert all(np.array_equal(same[k], fractions[k]) for k in fractions)
    with pytest.raises(ValueError, match=">= 1"):
        sharpen_fractions(fractions, 0.5)


def test_random_subject_renders_partial_volume_as_asked(mni):
    from napari_mr_reparam.simulate import Acquisition, render_slices

    options = dict(deform_mm=0.0, tables=("3t",), sharpening=2.0)
    signals = random_subject(mni, 4, **options)
    times = random_subject(mni, 4, partial_volume="times", **options)
    assert signals.mixture is not None and times.mixture is None
    assert signals.mixture.factors.keys() == {"pd", "t1", "t2", "t2star"}
    np.testing.assert_array_equal(signals.pd, times.pd)  # the same head, the same draws
    mixed = (signals.fractions["csf"] > 0.2) & (signals.fractions["grey_matter"] > 0.2)
    assert np.median(times.t2[mixed]) > 1.5 * np.median(signals.t2[mixed])  # linear against geometric
    # cortex with a little CSF: rendered from linearly mixed times it glows at a long TE
    z = mni.shape[0] // 2
    cortex = ((signals.fractions["grey_matter"][z] > 0.7) & (signals.fractions["csf"][z] > 0.05)
              & (signals.fractions["csf"][z] < 0.25))
    acq = Acquisition(300.0, 6000.0)
    assert cortex.sum() > 20
    assert (np.median(render_slices(times, acq, [z])[0][cortex])
            > 1.5 * np.median(render_slices(signals, acq, [z])[0][cortex]))


def test_random_subject_sharpening_makes_pure_tissue(mni):
    soft = random_subject(mni, 2, deform_mm=0.0, value_jitter=0.0)
    sharp = random_subject(mni, 2, deform_mm=0.0, value_jitter=0.0, sharpening=1e6)
    gm = get_table("brainweb_1.5t")["grey_matter"].t1
    pure = [int(np.isclose(p.t1, gm, rtol=1e-3).sum()) for p in (soft, sharp)]
    assert pure[1] > 10 * max(pure[0], 1)
    assert sharp.name == "mni152[brainweb_1.5t]+random(2)"  # the phantom's own table
    assert (sharp.pd > 0).sum() == pytest.approx((soft.pd > 0).sum(), rel=0.1)  # same head
    a, b = (random_subject(mni, 2, deform_mm=0.0, sharpening=4.0, texture=1.0) for _ in range(2))
    assert np.array_equal(a.t2, b.t2)  # seeded
    assert not np.array_equal(a.t2, random_subject(mni, 2, deform_mm=0.0, sharpening=4.0).t2)


def test_random_subject_stays_crisp_under_the_warp(mni):
    # sharpening acts after the deformation: resampling crisp maps would blend every border
    sharp = random_subject(mni, 2, deform_mm=4.0, value_jitter=0.0, sharpening=1e6)
    table = get_table("brainweb_1.5t")
    brain = sharp.mask() & (sharp.t1 > 0)
    pure = np.zeros_like(brain)
    for tissue in ("csf", "grey_matter", "white_matter"):
        pure |= np.isclose(sharp.t1, table[tissue].t1, rtol=1e-3)
    assert pure[brain].mean() > 0.9


def test_random_subject_csf_expansion_widens_csf_and_sharpening_min_keeps_it_crisp(mni):
    csf_t1 = get_table("brainweb_1.5t")["csf"].t1

    def csf_share(subject):
        brain = subject.mask() & (subject.t1 > 0)
        return np.isclose(subject.t1[brain], csf_t1, rtol=1e-3).mean()

    plain = random_subject(mni, 3, deform_mm=0.0, value_jitter=0.0, sharpening=16.0, sharpening_min=16.0)
    wide = random_subject(mni, 3, deform_mm=0.0, value_jitter=0.0, sharpening=16.0, sharpening_min=16.0,
                          csf_expansion=1e3)  # the draw is log-uniform: at least a few-fold
    assert csf_share(wide) > 1.3 * csf_share(plain)
    # same head: only border voxels CSF shares with the skull or scalp may change hands
    assert (wide.pd > 0.05).sum() == pytest.approx((plain.pd > 0.05).sum(), rel=0.1)
    # the smallest exponent bounds how soft a draw can be: equal bounds fix it
    fixed = random_subject(mni, 5, deform_mm=0.0, value_jitter=0.0, sharpening=16.0, sharpening_min=16.0)
    assert csf_share(fixed) > 0.6 * csf_share(plain)  # crisp for any seed, unlike a draw near 1
    assert np.array_equal(random_subject(mni, 4, sharpening=4.0).t2,
                          random_subject(mni, 4, sharpening=4.0, sharpening_min=1.0, csf_expansion=1.0).t2)


def test_the_fine_brain_nests_in_the_phantoms_grid():
    fine, coarse = mni152_fine_brain(), mni152_fractions()
    for tissue in ("grey_matter", "white_matter"):  # the template at 1 mm, averaged: the phantom's
        assert fine[tissue].shape == tuple(2 * n for n in coarse[tissue].shape)
        assert np.allclose(block_mean(fine[tissue], 2), coarse[tissue], atol=1e-5)
    total = sum(fine[t] for t in BRAIN_TISSUES)
    assert total.max() <= 1 + 1e-5 and not fine["csf"].flags.writeable


def test_random_subject_fine_brain_turns_thin_sulci_into_partial_volume(mni):
    table = get_table("brainweb_1.5t")
    crisp = dict(deform_mm=2.0, value_jitter=0.0, sharpening=16.0, sharpening_min=16.0, texture=0.5)

    def csf_shares(subject):
        brain = subject.mask() & (subject.t1 > 0)
        t1 = subject.t1[brain]
        mixed = (t1 > table["grey_matter"].t1 * 1.02) & (t1 < table["csf"].t1 * 0.98)
        return mixed.mean(), np.isclose(t1, table["csf"].t1, rtol=1e-3).mean()

    plain = random_subject(mni, 3, **crisp)
    fine = random_subject(mni, 3, **crisp, fine_brain=True)
    (plain_mixed, plain_pure), (fine_mixed, fine_pure) = csf_shares(plain), csf_shares(fine)
    assert fine_mixed > 1.5 * plain_mixed  # sulci narrower than a voxel become mixtures
    assert fine_pure < plain_pure
    # the same head: its extent and its scalp are the coarse grid's
    assert (fine.pd > 0.05).sum() == pytest.approx((plain.pd > 0.05).sum(), rel=0.01)
    beyond = ~ndimage.binary_dilation(plain.mask() | fine.mask(), iterations=2)  # (a trace of
    assert np.allclose(fine.t2[beyond], plain.t2[beyond], atol=10.0)  # brain tissue may remain)
    assert np.array_equal(fine.t2, random_subject(mni, 3, **crisp, fine_brain=True).t2)  # seeded
    _in_range(fine)


def test_random_subject_tilt_rotates_the_head_out_of_plane(mni):
    still = dict(deform_mm=0.0, value_jitter=0.0, sharpening=4.0)
    plain = random_subject(mni, 3, **still)
    assert np.array_equal(plain.t2, random_subject(mni, 3, **still, tilt_deg=0.0).t2)  # no draw
    tilted = random_subject(mni, 3, **still, tilt_deg=15.0)
    assert tilted.mask().sum() == pytest.approx(plain.mask().sum(), rel=0.03)  # a rotation
    # the brain's front-back centre moves with height when the head nods, not otherwise
    def slope(subject):
        m = subject.mask()
        zs = [z for z in range(m.shape[0]) if m[z].sum() > 500]
        return np.polyfit(zs, [ndimage.center_of_mass(m[z])[0] for z in zs], 1)[0]
    tilts = [abs(slope(random_subject(mni, s, **still, tilt_deg=15.0)) - slope(random_subject(mni, s, **still)))
             for s in range(3, 6)]
    assert max(tilts) > 0.03
    with pytest.raises(ValueError, match="tilt_deg"):
        random_subject(mni, 3, tilt_deg=-1.0)


def test_random_subject_in_other_planes_is_the_same_head_resliced(mni):
    """other_planes lays a subject out as sagittal or coronal slices (the head's top up): its
    maps, mask, fractions and mixture alike; 0 draws nothing, so seeds keep their heads."""
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.phantoms.random_subject import in_plane, resliced

    opts = dict(deform_mm=0.0, value_jitter=0.05, sharpening=4.0, tables=("3t",), tissue_jitter=0.1)
    plain = random_subject(mni, 3, **opts)
    assert np.array_equal(plain.t2, random_subject(mni, 3, **opts, other_planes=0.0).t2)  # no draw
    planes = {random_subject(mni, s, **opts, other_planes=1.0).name.rsplit("[", 1)[-1] for s in range(6)}
    assert planes == {"sagittal]", "coronal]"}
    for plane, axes in (("sagittal", (2, 0, 1)), ("coronal", (1, 0, 2))):
        turned = resliced(plain, plane)
        assert turned.shape == tuple(plain.shape[a] for a in axes)
        assert np.array_equal(turned.t1, in_plane(plain.t1, plane))
        assert np.array_equal(turned.mask(), in_plane(plain.mask(), plane))
        assert np.array_equal(turned.fractions["csf"], in_plane(plain.fractions["csf"], plane))
        acq = Acquisition(100, 4000)
        assert np.allclose(turned.mixture.render(acq), in_plane(plain.mixture.render(acq), plane))
    top = resliced(plain, "sagittal").mask()  # the head's top (the axial stack's last slices) is row 0
    rows = np.flatnonzero(top.any(axis=(0, 2)))
    assert np.flatnonzero(plain.mask().any(axis=(1, 2)))[-1] == plain.shape[0] - 1 - rows[0]
    with pytest.raises(ValueError, match="other_planes"):
        random_subject(mni, 3, other_planes=-0.1)


def test_random_subject_geometry_scales_and_stretches_the_head(mni):
    still = dict(deform_mm=0.0, value_jitter=0.0, max_rotation_deg=0.0)
    plain = random_subject(mni, 3, **still)
    assert np.array_equal(plain.t2, random_subject(mni, 3, **still, anisotropy=0.0).t2)  # no draw
    assert np.array_equal(random_subject(mni, 3).t2,  # the defaults are the old constants
                          random_subject(mni, 3, max_scale=0.05, max_rotation_deg=5.0).t2)
    unscaled = random_subject(mni, 3, **dict(still, max_scale=0.0))
    assert np.array_equal(unscaled.mask(), mni.mask())  # no scale, rotation or warp: the base

    def extent(subject):  # the brain's length along each axis, in voxels
        return np.array([np.ptp(np.flatnonzero(subject.mask().any(axis=tuple(a for a in range(3) if a != k))))
                         for k in range(3)], float)
    ratios = [extent(random_subject(mni, s, **dict(still, max_scale=0.0), anisotropy=0.15)) / extent(mni)
              for s in range(3)]
    spread = [r.max() - r.min() for r in ratios]  # axes stretched unequally
    assert max(spread) > 0.05 and all(np.all(np.abs(r - 1) < 0.2) for r in ratios)
    for bad in ({"max_scale": 1.0}, {"anisotropy": -0.1}, {"max_rotation_deg": -1.0}, {"deform_mm": -1.0}):
        with pytest.raises(ValueError, match="max_scale and anisotropy"):
            random_subject(mni, 3, **bad)


def test_add_sulci_moves_grey_matter_into_thin_partial_volume_csf():
    rng = np.random.default_rng(0)
    shape = (12, 40, 40)
    gm = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    fractions = {"grey_matter": gm, "white_matter": 1 - gm, "csf": np.zeros(shape, np.float32)}
    assert add_sulci(fractions, (2.0,) * 3, np.random.default_rng(1), 0.0) is fractions
    thin, wide = (add_sulci(fractions, (2.0,) * 3, np.random.default_rng(1), w) for w in (1.0, 4.0))
    for out in (thin, wide):
        total = sum(out.values())
        assert np.allclose(total, 1.0, atol=1e-5)  # per voxel the total is kept
        assert np.array_equal(out["white_matter"], fractions["white_matter"])  # only grey matter gives
        assert (out["csf"] >= 0).all() and (out["grey_matter"] >= -1e-6).all()
    share = thin["csf"] / np.maximum(gm, 1e-6)  # the share of its grey matter a voxel gave
    assert share.max() <= 0.5 + 1e-5  # a 1 mm sheet covers at most half a 2 mm voxel
    cut = share > 0.01
    assert 0.05 < cut.mean() < 0.6  # thin sheets: some voxels, not most
    assert wide["csf"].sum() > 2 * thin["csf"].sum()
    assert (wide["csf"] / np.maximum(gm, 1e-6)).max() == pytest.approx(1.0, abs=1e-5)


def test_random_subject_sulci_add_mixed_csf_to_a_crisp_head(mni):
    table = get_table("brainweb_1.5t")

    def csf_mixed_share(subject):
        brain = subject.mask() & (subject.t1 > 0)
        t1 = subject.t1[brain]
        between = (t1 > table["grey_matter"].t1 * 1.02) & (t1 < table["csf"].t1 * 0.98)
        return between.mean()

    crisp = dict(deform_mm=0.0, value_jitter=0.0, sharpening=16.0, sharpening_min=16.0)
    plain = random_subject(mni, 3, **crisp)
    cut = random_subject(mni, 3, **crisp, sulcus_width=2.0)
    assert csf_mixed_share(cut) > 3 * csf_mixed_share(plain)  # 18 % of the brain against 3 %
    assert (cut.pd > 0.05).sum() == pytest.approx((plain.pd > 0.05).sum(), rel=0.01)  # same head
    assert np.array_equal(random_subject(mni, 4, sharpening=4.0).t2,
                          random_subject(mni, 4, sharpening=4.0, sulcus_width=0.0).t2)


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
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in MAPS)
    assert np.array_equal(a.mask(), b.mask())
    assert not np.array_equal(a.t1, c.t1)
    assert a.shape == mni.shape and all(getattr(a, k).dtype == np.float32 for k in MAPS)
    assert a.name.startswith("mni152[") and a.name.endswith("+random(5)")
    assert c.name == "mni152[brainweb_1.5t]+random(6)"
    _in_range(a)
    assert 0.8 < a.mask().sum() / mni.mask().sum() < 1.2


def test_random_subject_on_a_phantom_without_classes():
    base = tiny_phantom(n=8, h=32, w=28)
    plain = Phantom(base.pd, base.t1, base.t2, base.t2star, name="plain")  # no brain mask
    rng = np.random.default_rng(3)
    a = random_subject(plain, rng, deform_mm=2.0, tables=["3t"])  # tables ignored here
    assert a.shape == plain.shape and a.name == "plain+random"
    assert (a.t1 > 0).sum() == pytest.approx((plain.t1 > 0).sum(), rel=0.25)
    assert not np.array_equal(a.t1, random_subject(plain, rng).t1)  # the generator moved on
    _in_range(a)


def test_random_bias_field_and_noise_level():
    field = random_bias_field((20, 30, 30), np.random.default_rng(0), 0.2)
    assert field.shape == (20, 30, 30) and field.dtype == np.float32
    assert 0.8 - 1e-6 <= field.min() and field.max() <= 1.2 + 1e-6
    assert field.mean() == pytest.approx(1.0, abs=1e-3)
    assert field.max() - field.min() > 0.1
    assert np.array_equal(field, random_bias_field((20, 30, 30), 0, 0.2))
    levels = [random_noise_level(np.random.default_rng(s), 0.01, 0.02) for s in range(20)]
    assert all(0.01 <= v <= 0.02 for v in levels) and len(set(levels)) > 1


def test_tissue_jitter_mixes_tables_and_varies_contrast_and_is_off_at_zero(mni):
    from napari_mr_reparam.phantoms.random_subject import mixed_table

    rng = np.random.default_rng(0)
    tables = [mixed_table(["brainweb_1.5t", "3t"], rng, 0.15) for _ in range(20)]
    ratios = {round(t["grey_matter"].t1 / t["white_matter"].t1, 3) for t in tables}
    assert len(ratios) == 20  # each subject's grey/white contrast its own
    low, high = get_table("brainweb_1.5t")["white_matter"].t1, get_table("3t")["white_matter"].t1
    plain = mixed_table(["brainweb_1.5t", "3t"], np.random.default_rng(1), 0.0)
    assert min(low, high) <= plain["white_matter"].t1 <= max(low, high)
    a = random_subject(mni, 3, tables=["brainweb_1.5t", "3t"], deform_mm=0.0, value_jitter=0.0,
                       tissue_jitter=0.3)
    b = random_subject(mni, 3, tables=["brainweb_1.5t", "3t"], deform_mm=0.0, value_jitter=0.0)
    assert not np.allclose(a.t1, b.t1)
    assert b.name.endswith("+random(3)") and "~" not in b.name  # off: one table as it is


def test_random_subject_keeps_the_fractions_its_maps_were_mixed_from(mni):
    subject = random_subject(mni, 2, deform_mm=0.0, value_jitter=0.0, sharpening=4.0)  # drawn from fractions
    assert subject.fractions and set(subject.fractions) <= set(TISSUES)
    total = sum(subject.fractions.values())
    assert all(f.shape == subject.shape for f in subject.fractions.values())
    assert subject.pd[total < 1e-3].max() == 0.0  # no tissue, no signal
    csf, wm = subject.fractions["csf"] > 0.95, subject.fractions["white_matter"] > 0.95
    assert csf.any() and wm.any() and subject.t2[csf].min() > subject.t2[wm].max()
    assert random_subject(tiny_phantom(), 1).fractions is None  # voxel maps: none to keep
