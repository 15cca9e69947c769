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


def _t1_look(mprage: float) -> "contrast.ContrastGuess":
    t1w = 1.0 - mprage
    return contrast.ContrastGuess("T1w", t1w, {"T1w": t1w, "MPRAGE": mprage})


@pytest.mark.parametrize("voxels, mprage, reading", [
    ((1.0, 1.0, 1.0), 0.3, "MPRAGE"),  # 3-D, MPRAGE 0.43 of T1w
    ((1.2, 0.9, 0.9), 0.3, "MPRAGE"),
    ((1.0, 1.0, 1.0), 0.1, "T1w"),  # 3-D, but the image looks little like MPRAGE
    ((5.0, 0.5, 0.5), 0.3, "T1w"),  # 2-D slices: a T1-weighted spin echo
    (None, 0.45, "T1w"),  # no placement known
])
def test_a_t1_weighted_look_on_3d_voxels_is_read_as_mprage(voxels, mprage, reading):
    guess = contrast.read_as(_t1_look(mprage), voxels)
    assert guess.preset == "T1w" and guess.reading == reading
    assert ("3-D voxels" in guess.describe()) == (reading == "MPRAGE")


def test_only_a_t1w_look_is_read_otherwise():
    guess = contrast.ContrastGuess("FLAIR", 0.5, {"FLAIR": 0.5, "T1w": 0.1, "MPRAGE": 0.4})
    assert contrast.read_as(guess, (1.0, 1.0, 1.0)).reading == "FLAIR"


def test_voxel_size_only_where_a_file_states_it():
    from napari_mr_reparam.io import Volume

    stack = np.zeros((4, 8, 8), np.float32)
    assert contrast.voxel_mm(Volume(data=stack, spacing=(1.0, 0.9, 0.9))) == (1.0, 0.9, 0.9)
    assert contrast.voxel_mm(Volume(data=stack, kind="image")) is None  # a PNG or a layer of unknown placement
    assert contrast.voxel_mm(Volume(data=stack[:1], spacing=(1.0, 0.9, 0.9))) is None  # one slice


def test_a_reading_the_model_cannot_take_falls_back_to_the_look(monkeypatch):
    monkeypatch.setattr(contrast, "guess_input", lambda volume, weights=None: _t1_look(0.4))

    class SpinEchoOnly:
        def reads_input(self, sequence):
            return sequence == "spin_echo"

    acq, guess = contrast.guessed_reading(np.zeros((4, 8, 8)), SpinEchoOnly(), voxels_mm=(1.0, 1.0, 1.0))
    assert guess.reading == "T1w" and acq.sequence == "spin_echo" and not guess.reason


def test_a_t1w_look_nearer_flair_than_mprage_stays_t1w_on_3d_voxels():
    guess = contrast.ContrastGuess("T1w", 0.45, {"T1w": 0.45, "FLAIR": 0.25, "MPRAGE": 0.2})  # MPRAGE 0.44 of T1w
    assert contrast.read_as(guess, (1.0, 1.0, 1.0)).reading == "T1w"
