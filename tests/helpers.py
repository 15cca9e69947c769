"""Shared test helpers: where the shared MRiLab phantom lives, small phantoms, and maps
rendered at joint-fit inputs."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MRILAB_NPZ = ROOT.parent / "shared" / "phantoms" / "mrilab_brain" / "mrilab_brain_standard.npz"


def mrilab_path() -> Path:
    if not MRILAB_NPZ.is_file():
        pytest.skip(f"MRiLab phantom not found at {MRILAB_NPZ}: these tests need ../shared/")
    return MRILAB_NPZ


def tiny_phantom(n=6, h=24, w=20):
    """A small two-tissue ellipse phantom: 'CSF' core inside 'white matter'."""
    from napari_mr_reparam.phantoms import Phantom

    z, y, x = np.mgrid[:n, :h, :w]
    r = ((y - h / 2) / (h / 2.5)) ** 2 + ((x - w / 2) / (w / 2.5)) ** 2
    inside, core = r < 1, r < 0.3
    pd = np.where(core, 1.0, np.where(inside, 0.77, 0)).astype(np.float32)
    t1 = np.where(core, 2569, np.where(inside, 500, 0)).astype(np.float32)
    t2 = np.where(core, 329, np.where(inside, 70, 0)).astype(np.float32)
    return Phantom(pd, t1, t2, t2 * 0.8, name="tiny", brain_mask=inside)


#: A training run small enough for a test: narrow networks, few pairs and slices, tiny batches.
TINY_TRAINING = dict(width=0.0625, pairs=8, slices=4, batch_size=2, checkpoint_every=2, log_every=1,
                     threads=1)


def tiny_train_config(out, phantom_spec, **kw):
    """A :class:`~napari_mr_reparam.training.config.TrainConfig` of :data:`TINY_TRAINING`
    on ``phantom_spec``, writing to ``out``."""
    from napari_mr_reparam.training.config import TrainConfig

    return TrainConfig(**{**TINY_TRAINING, "phantoms": [phantom_spec], "out": str(out), **kw})


def below_sustained_peak(render) -> np.ndarray:
    """The voxels of a joint render that its overshoot clipping left as rendered: those
    under their plane's sustained peak (:func:`napari_mr_reparam.peaks.sustained_peak`).
    Renders of maps that change from voxel to voxel at random have a lone maximum in every
    plane, which the clipping lowers."""
    from napari_mr_reparam.peaks import sustained_peak

    render = np.asarray(render)
    return render < sustained_peak(render)[..., None, None]


def tissue_blocks(shape=(1, 48, 48)):
    """PD, T1 and T2 (ms) of flat tissue blocks (white matter, grey matter, CSF with a long
    T1) in a background frame."""
    pd, t1, t2 = (np.zeros(shape, np.float32) for _ in range(3))
    for (lo, hi), (p, r1, r2) in (((4, 16), (0.7, 600, 75)), ((16, 30), (0.85, 1100, 95)),
                                  ((30, 44), (1.0, 3800, 900))):
        pd[:, 4:44, lo:hi], t1[:, 4:44, lo:hi], t2[:, 4:44, lo:hi] = p, r1, r2
    return pd, t1, t2


def random_maps(shape=(2, 24, 24), seed=0):
    """PD, T1 and T2 (ms) drawn per voxel (T1 300-2500, T2 30-300 ms), three background rows."""
    rng = np.random.default_rng(seed)
    pd = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    t1 = np.exp(rng.uniform(np.log(300), np.log(2500), shape)).astype(np.float32)
    t2 = np.exp(rng.uniform(np.log(30), np.log(300), shape)).astype(np.float32)
    for m in (pd, t1, t2):
        m[:, :3] = 0  # background rows
    return pd, t1, t2


def render_inputs(acqs, pd, t1, t2):
    """The maps' images at each acquisition (x 1000), as a joint fit's inputs."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.fit_information import acquisition_values

    values = [acquisition_values(a) for a in acqs]
    return [np.asarray(physics.render(a.sequence, pd, t1, t2, a.te, a.tr, ti=a.ti, flip_deg=a.flip_deg),
                       np.float32) * 1000 for a in values]


def inversion_series(k, tis, tr=1000, te=10, seed=4):
    """Random maps' inversion-recovery images at ``tis`` (ms) with inversion efficiency ``k``."""
    from napari_mr_reparam import physics
    from napari_mr_reparam.simulate import Acquisition

    pd, t1, t2 = random_maps(seed=seed)
    acqs = [Acquisition(te, tr, "inversion_recovery", ti) for ti in tis]
    images = [np.asarray(physics.inversion_recovery(1000 * pd, t1, t2, te, tr, ti, efficiency=k), np.float32)
              for ti in tis]
    return pd, t1, acqs, images
