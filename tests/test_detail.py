import numpy as np
import pytest

from napari_mr_reparam.detail import DetailGuide
from napari_mr_reparam.resize import resize_slices


def _two_tissues(size: int = 256, phase: float = 0.0):
    """A fine two-tissue pattern (thin stripes and a disc): each pixel's fraction of the
    second tissue."""
    y, x = np.mgrid[:size, :size]
    disc = (y - size / 2) ** 2 + (x - size / 3) ** 2 < (size / 5) ** 2
    return ((np.sin(x / 1.7 + phase) > 0.3) | disc).astype(np.float32)[None]


def test_opposite_contrast_keeps_the_fine_structure():
    frac = _two_tissues()
    given = 0.3 + 0.6 * frac  # tissue b bright in the input
    target = 0.9 - 0.7 * frac  # and dark in the target
    guide = DetailGuide(given, (128, 128))
    coarse = DetailGuide(target, (128, 128)).small[:, 0].numpy()  # a render on the grid, exact there
    out = guide.upsample(coarse)
    plain = np.clip(resize_slices(coarse, 256), 0, 1)
    assert out.shape == given.shape and out.min() >= 0 and out.max() <= 1
    err, err_plain = (float(np.sqrt(np.mean((o - target) ** 2))) for o in (out, plain))
    assert err < 0.2 * err_plain, (err, err_plain)


def test_the_inputs_own_render_returns_the_input():
    frac = _two_tissues(phase=1.0)
    given = 0.2 + 0.7 * frac
    guide = DetailGuide(given, (128, 128))
    own = guide.small[:, 0].numpy()  # the input on the working grid, as its exact render there
    err = np.abs(guide.upsample(own) - given)
    assert err.max() < 0.1 and np.sqrt(np.mean(err**2)) < 0.02  # exact but next to edges


def test_flat_input_keeps_the_coarse_render_and_slices_select():
    given = np.full((3, 64, 64), 0.5, np.float32)
    ramp = np.linspace(0.1, 0.9, 32, dtype=np.float32)
    coarse = np.stack([np.broadcast_to(ramp * k, (32, 32)) for k in (1.0, 0.8, 0.6)])
    guide = DetailGuide(given, (32, 32))
    out = guide.upsample(coarse)
    assert np.abs(out - resize_slices(coarse, 64)).max() < 0.05  # no detail to add: the render
    part = guide.slices(np.array([2]))
    np.testing.assert_allclose(part.upsample(coarse[2:]), out[2:], atol=1e-6)
    with pytest.raises(IndexError):
        guide.slices(np.array([5]))


def test_scale_multiplies_each_slice_after_the_clip():
    rng = np.random.default_rng(4)
    given = rng.uniform(0, 1, (2, 64, 64)).astype(np.float32)
    coarse = rng.uniform(-0.2, 1.2, (2, 32, 32)).astype(np.float32)  # the clip matters
    guide = DetailGuide(given, (32, 32))
    plain, scaled = guide.upsample(coarse), guide.upsample(coarse, np.array([2.0, 300.0]))
    np.testing.assert_allclose(scaled, plain * np.array([2.0, 300.0])[:, None, None], rtol=1e-5, atol=1e-4)


def test_training_form_matches_the_engine_and_passes_gradients():
    import torch

    from napari_mr_reparam.detail import guided_upsample

    rng = np.random.default_rng(5)
    given = rng.uniform(0, 1, (2, 1, 64, 64)).astype(np.float32)
    coarse = torch.tensor(rng.uniform(0, 1, (2, 3, 32, 32)).astype(np.float32), requires_grad=True)
    out = guided_upsample(coarse, torch.from_numpy(given))
    assert out.shape == (2, 3, 64, 64)
    for b in range(2):  # each target of each image as the engine renders it
        engine = DetailGuide(given[b], (32, 32)).upsample(coarse[b].detach().numpy())
        np.testing.assert_allclose(out[b].detach().numpy(), engine, atol=1e-6)
    out.sum().backward()
    assert coarse.grad is not None and float(coarse.grad.abs().sum()) > 0
