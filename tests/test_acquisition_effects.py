"""Real-scan effects drawn for training (acquisition_effects.py): each acts as intended
and each can be turned off."""

from dataclasses import replace

import numpy as np
import pytest

from napari_mr_reparam import physics
from napari_mr_reparam.acquisition_effects import (Effects, add_noise, draw_input, draw_target_times, geometry,
                                                   jpeg, lower_resolution, normalize, realistic_example,
                                                   slab_weights)
from napari_mr_reparam.phantoms import Phantom


def head(n=9, h=40, w=36) -> Phantom:
    """A small layered phantom: CSF core, grey, white, grey rind, a fat shell; slices
    differ so slab averaging shows."""
    z, y, x = np.mgrid[:n, :h, :w].astype(np.float32)
    r = np.sqrt(((y - h / 2) / (h / 2.3)) ** 2 + ((x - w / 2) / (w / 2.3)) ** 2) * (1 + 0.05 * z)
    tissue = np.select([r < 0.2, r < 0.45, r < 0.7, r < 0.85, r < 1.0], [0, 1, 2, 1, 3], 4)
    pd = np.array([1.0, 0.86, 0.77, 1.0, 0.0], np.float32)[tissue]
    t1 = np.array([2569, 833, 500, 350, 0], np.float32)[tissue]
    t2 = np.array([329, 83, 70, 70, 0], np.float32)[tissue]
    return Phantom(pd, t1, t2, t2 * 0.8, voxel_size_mm=(2.0, 2.0, 2.0), name="layers",
                   brain_mask=(r < 0.6))


def example(effects: Effects, seed=0, task="p2p", sequences=physics.INPUT_SEQUENCES, **kw):
    return realistic_example(head(), None, np.random.default_rng(seed), effects, task, sequences, **kw)


def test_with_every_effect_off_the_input_is_the_clean_export():
    off = Effects.none()
    e = example(off, task="d2p")
    assert e["input_seq"] == 0 and e["input_te"] == 50 and e["input_tr"] == 4500
    from napari_mr_reparam.simulate import Acquisition, simulate_images

    ph = head()
    clean = simulate_images(ph, Acquisition(50.0, 4500.0), None, None).astype(np.float32) / 255
    assert any(np.abs(e["input"][0] - clean[i]).max() < 1e-6 for i in range(ph.shape[0]))


def test_the_default_effects_change_the_input_but_not_the_clean_targets():
    on, off = example(Effects(), seed=3, targets=3), example(Effects.none(), seed=3, targets=3)
    assert on["target"].shape == (3, 40, 36) and on["input"].shape == (1, 40, 36)
    for e in (on, off):  # targets: each normalized to its maximum, 8-bit
        assert np.allclose(e["target"].max(axis=(1, 2)), 1.0)
        assert np.allclose(e["target"] * 255, np.rint(e["target"] * 255), atol=1e-4)


def test_slab_weights_average_thick_slices():
    np.testing.assert_allclose(slab_weights(2.0), [1.0])
    np.testing.assert_allclose(slab_weights(1.0), [1.0])  # thinner than the grid: the grid's
    np.testing.assert_allclose(slab_weights(6.0), [1 / 3] * 3)
    w = slab_weights(4.0)
    np.testing.assert_allclose(w, [0.25, 0.5, 0.25])
    thin = example(replace(Effects.none(), thickness_mm=(2.0, 2.0)), seed=1)
    thick = example(replace(Effects.none(), thickness_mm=(6.0, 6.0)), seed=1)
    assert not np.allclose(thin["input"], thick["input"])


def test_slab_times_mix_the_slices_geometrically_by_water():
    from napari_mr_reparam.acquisition_effects import slab_times

    pd = np.array([[[0.8]], [[1.0]], [[0.0]]], np.float32)  # grey matter, CSF, air
    t2 = np.array([[[100.0]], [[2000.0]], [[0.0]]], np.float32)
    w = np.array([1 / 3] * 3, np.float32)
    mixed = slab_times(pd, t2, 1, w)[0, 0]
    assert mixed == pytest.approx(np.exp((0.8 * np.log(100) + np.log(2000)) / 1.8), rel=1e-4)
    assert slab_times(np.zeros_like(pd), t2, 1, w)[0, 0] == 0.0


def test_geometry_zooms_and_cuts():
    image = np.zeros((32, 32), np.float32)
    image[12:20, 12:20] = 1
    assert geometry(image, 1.0, (0.0, 0.0)) is image
    assert geometry(image, 2.0, (0.0, 0.0)).sum() == pytest.approx(4 * image.sum(), rel=0.1)
    moved = geometry(image, 1.0, (0.0, 20.0))
    assert moved.sum() < image.sum()  # part moved out of the field of view


def test_lower_resolution_rings_or_blurs_and_the_grid_is_left_alone():
    image = np.zeros((64, 64), np.float32)
    image[16:48, 16:48] = 1
    assert lower_resolution(image, 1.0, True) is image
    rung = lower_resolution(image, 2.0, True)
    blurred = lower_resolution(image, 2.0, False)
    assert rung[32, 16:48].max() > 1.02  # Gibbs overshoot at the edge
    assert blurred.max() <= 1.0 + 1e-5 and not np.allclose(blurred, image)


def test_noise_normalization_and_jpeg():
    rng = np.random.default_rng(0)
    image = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    assert add_noise(image, 0.0, rng) is image
    noisy = add_noise(image, 0.05, rng)
    assert 0.02 < np.std(noisy - image) < 0.08
    assert normalize(image * 3, "max", rng).max() == pytest.approx(1.0)
    pct = normalize(image * 3, "percentile", rng)
    assert pct.max() == 1.0 and (pct == 1.0).sum() > 1  # the top is clipped
    window = normalize(image * 3, "window", rng)
    assert (window == 1.0).sum() > (pct == 1.0).sum() or window.min() == 0
    stored = jpeg(image, 50)
    assert stored.shape == image.shape and 0 < np.abs(stored - image).mean() < 0.05


def test_skull_strip_keeps_only_the_brain_in_input_and_targets():
    strip = replace(Effects.none(), skull_strip=1.0)
    e = example(strip, seed=2, targets=2)
    full = example(Effects.none(), seed=2, targets=2)
    assert (e["input"] > 0).sum() < (full["input"] > 0).sum()
    assert (e["target"][0] > 0).sum() < (full["target"][0] > 0).sum()


def test_each_option_turns_off():
    """Every effect at its zero leaves the example as with all effects off."""
    base = Effects.none()
    for name, value in (("skull_strip", 1.0), ("jpeg", 1.0), ("noise_free", 0.0), ("blur_px", 1.5),
                        ("zoom", (1.3, 1.3)), ("pixel_mm", (3.0, 3.0)), ("normalizations", (0, 0, 1))):
        changed = example(replace(base, **{name: value}), seed=5)["input"]
        assert not np.allclose(changed, example(base, seed=5)["input"]), name


def test_inputs_of_every_sequence_and_targets_with_t1_weighting():
    rng = np.random.default_rng(0)
    drawn = [draw_input(rng) for _ in range(400)]
    assert {d.sequence for d in drawn} == set(physics.INPUT_SEQUENCES)
    for d in drawn:
        assert d.te_ms < d.tr_ms and (d.ti_ms is None or d.ti_ms < d.tr_ms)
        if d.sequence in ("inversion_recovery", "mprage"):
            assert d.ti_ms is not None
        if d.sequence in ("gradient_echo", "mprage"):
            assert d.flip_deg is not None
    only = {draw_input(rng, ("mprage",)).sequence for _ in range(10)}
    assert only == {"mprage"}
    te, tr = draw_target_times(rng, 2000, 0.25)
    assert 0.2 < np.mean(tr <= 1200) < 0.35 and np.all(te < tr)
    te, tr = draw_target_times(rng, 500, 0.0)
    assert tr.min() >= 1200
    e = example(Effects.none(), seed=0, sequences=("mprage",))
    assert e["input_seq"] == physics.INPUT_SEQUENCES.index("mprage") and e["input_ti"] > 0


def test_unknown_or_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown acquisition effects: colour"):
        Effects.from_options({"colour": 1})
    with pytest.raises(ValueError, match="probability"):
        Effects.from_options({"jpeg": 2})
    assert Effects.from_options({"zoom": [1.0, 1.2]}).zoom == (1.0, 1.2)


def test_each_model_warns_outside_its_own_trained_range():
    import json
    from pathlib import Path

    from napari_mr_reparam import acquisition_effects
    from napari_mr_reparam.acquisition import TRAINED_RANGE_MS, out_of_range_warnings

    paper = acquisition_effects.trained_ranges(None)
    assert paper["target"] == TRAINED_RANGE_MS and paper["input"] == TRAINED_RANGE_MS
    card = Path(acquisition_effects.__file__).parent / "weights" / "physics.json"
    general = acquisition_effects.trained_ranges(json.loads(card.read_text())["config"])
    assert general["target"]["tr"] == (400.0, 10000.0)  # the generalist drew T1-like targets
    assert out_of_range_warnings(15, 600, general["input"]) == []  # a T1-weighted input it trained on
    assert out_of_range_warnings(20, 600, general["target"]) == []
    assert out_of_range_warnings(20, 600, paper["target"])  # the paper's models never saw TR 600
    assert "TR 300 ms" in out_of_range_warnings(20, 300, general["target"])[0]
    none = acquisition_effects.trained_ranges({"acquisition": {"target_t1_weighted": 0.0}})
    assert none["target"]["tr"] == TRAINED_RANGE_MS["tr"]


def _head_with_fractions() -> Phantom:
    """:func:`head` with the tissue fractions its maps hold (CSF, grey, white, fat)."""
    ph = head()
    names = {0: "csf", 1: "grey_matter", 2: "white_matter", 3: "fat"}
    tissue = np.select([ph.t1 == 2569, ph.t1 == 833, ph.t1 == 500, ph.t1 == 350], [0, 1, 2, 3], 4)
    return replace(ph, fractions={n: (tissue == i).astype(np.float32) for i, n in names.items()})


def test_classes_follow_the_tissue_through_slab_and_skull_strip():
    from napari_mr_reparam.tissues import TISSUES

    rng = np.random.default_rng(0)
    e = realistic_example(_head_with_fractions(), None, rng, Effects.none(), "p2p", ("spin_echo",),
                          with_classes=True)
    classes = e["classes"]
    assert classes.shape == (len(TISSUES), 40, 36) and classes.min() >= 0
    assert np.allclose(classes.sum(0)[e["target"][0] > 0], 1.0, atol=1e-5)  # every lit pixel is tissue
    assert classes.sum(0)[e["target"][0] == 0].max() == 0.0
    csf = classes[TISSUES.index("csf")] > 0.99
    assert csf.any() and e["target"][0][csf].min() > 0
    strip = realistic_example(_head_with_fractions(), None, np.random.default_rng(0),
                              replace(Effects.none(), skull_strip=1.0), "p2p", ("spin_echo",), with_classes=True)
    assert strip["classes"][TISSUES.index("fat")].max() == 0.0  # stripped with the skull
    with pytest.raises(ValueError, match="no tissue fractions"):
        realistic_example(head(), None, rng, Effects.none(), "p2p", ("spin_echo",), with_classes=True)
