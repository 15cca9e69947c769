"""Which input preset an image looks like (contrast.py): labels, the guess, the fallbacks."""

import numpy as np
import pytest

from napari_mr_reparam import contrast
from napari_mr_reparam.acquisition import Acquisition
from napari_mr_reparam.presets import get_preset


@pytest.mark.parametrize("name", contrast.CLASSES)
def test_each_preset_is_its_own_label(name):
    assert contrast.CLASSES[contrast.preset_label(get_preset(name).acquisition())] == name


@pytest.mark.parametrize("acq, expected", [
    (Acquisition(12, 650), "T1w"), (Acquisition(110, 5000), "T2w"), (Acquisition(20, 2500), "PDw"),
    (Acquisition(4, 20, "gradient_echo", None, 25), "T1w"),
    (Acquisition(100, 10000, "inversion_recovery", 2400), "FLAIR"),
    (Acquisition(90, 7000, "inversion_recovery", 2000), "FLAIR"),  # CSF nulled at a shorter TR
    (Acquisition(40, 4000, "inversion_recovery", 150), "STIR"),
    (Acquisition(3.5, 2000, "mprage", 1000, 8), "MPRAGE")])
def test_clinical_acquisitions_are_labelled_as_a_radiologist_names_them(acq, expected):
    assert contrast.CLASSES[contrast.preset_label(acq)] == expected


def test_a_nulled_tissue_is_floored_not_minus_infinity():
    sig = contrast.contrast_signature(get_preset("FLAIR").acquisition())
    assert np.all(np.isfinite(sig)) and sig.min() >= np.log(contrast.SIGNATURE_FLOOR) - 1e-9


def test_slices_with_signal_skip_the_empty_ends():
    vol = np.zeros((20, 8, 8), np.float32)
    vol[5:15] = 1.0
    picked = contrast._slices_with_signal(vol, 4)
    assert picked.shape == (4, 8, 8) and picked.min() == 1.0
    assert contrast._slices_with_signal(vol[7], 4).shape == (1, 8, 8)  # one 2-D image


class _Stub:
    """A classifier that always says class ``k``."""

    def __init__(self, k):
        import torch

        self.k, self.torch = k, torch

    def __call__(self, x):
        logits = self.torch.zeros(x.shape[0], len(contrast.CLASSES))
        logits[:, self.k] = 5.0
        return logits


def test_guess_averages_the_slices_and_names_the_class():
    guess = contrast.guess_input(np.random.default_rng(0).random((6, 16, 16)),
                                 classifier=(_Stub(1), {"classes": list(contrast.CLASSES)}))
    assert guess.preset == contrast.CLASSES[1] and guess.probability > 0.9
    assert guess.describe().startswith(contrast.CLASSES[1] + " (")


def test_no_bundled_classifier_means_no_guess(monkeypatch, tmp_path):
    from napari_mr_reparam import weights

    monkeypatch.setattr(weights, "BUNDLED_DIR", tmp_path)

    class Engine:
        def reads_input(self, sequence):
            return True

    assert contrast.guessed_reading(np.random.default_rng(0).random((2, 8, 8)), Engine()) is None


@pytest.mark.parametrize("volume", [np.ones((2, 8, 8)), np.full((2, 8, 8), np.nan), np.zeros((0, 8, 8))])
def test_a_volume_without_an_image_is_refused_before_any_guess(volume):
    with pytest.raises(ValueError, match="the volume holds no image"):
        contrast.guess_input(volume, classifier=(None, {}))


def _shared_real_t1():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "anatomy" / "voxelmorph" / "test_scan.npz"
    if not path.exists():
        pytest.skip(f"needs ../shared (the real T1 scan {path.name} of anatomy/voxelmorph); not found at {path}")
    from napari_mr_reparam.phantoms.freesurfer import read_npz_array

    return read_npz_array(path, "vol").astype(np.float32)  # axial slices along the first axis


def _mni152_t1():
    from napari_mr_reparam.io import load_volume
    from napari_mr_reparam.phantoms.mni152 import template_path

    return load_volume(template_path("t1")).data


@pytest.mark.parametrize("load", [_mni152_t1, _shared_real_t1], ids=["MNI152 template", "real T1 scan"])
def test_the_bundled_classifier_reads_real_t1_weighted_scans_as_t1_weighted(load):
    """Real T1-weighted images it never trained on (the template's and the scan's
    intensities; only their anatomy is in training) are guessed T1w or MPRAGE."""
    guess = contrast.guess_input(load())
    assert guess.preset in ("T1w", "MPRAGE"), guess.probabilities
