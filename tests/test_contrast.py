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

    assert contrast.guessed_reading(np.ones((2, 8, 8)), Engine()) is None
