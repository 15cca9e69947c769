"""The peak diagnostic (benchmarks/bench_peak.py): a fixed count reaches the model's
renders and is undone afterwards; the oracle rescaling never scores below the plain one."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_peak  # noqa: E402


def test_a_fixed_count_reaches_the_maps_and_is_undone():
    from napari_mr_reparam import peaks
    from napari_mr_reparam.models.physics_net import PhysicsNet

    net = PhysicsNet(base=4, depth=3, task="d2p").eval()
    original = peaks.calibrated_count
    with torch.no_grad(), bench_peak.fixed_count(8):
        assert net.maps(torch.rand(3, 1, 32, 32))["peak_count"].tolist() == [8, 8, 8]
    assert peaks.calibrated_count is original


def test_the_oracle_row_is_at_least_the_plain_one(tiny_weights):
    from napari_mr_reparam.datasets import build_protocol_dataset
    from napari_mr_reparam.inference import InferenceOptions, Reparameterizer
    from napari_mr_reparam.phantoms import load_phantom

    engine = Reparameterizer("physics", device="cpu")
    by_max = InferenceOptions(calibrate_peak=False)
    ds = build_protocol_dataset(load_phantom("mni152"), seed=0)
    plain = bench_peak.score(engine, ds, "d2p", 6, options=by_max)
    oracle = bench_peak.score(engine, ds, "d2p", 6, oracle=True, options=by_max)
    assert plain.shape == (6,) and np.all(oracle >= plain - 0.05)
    counts = bench_peak.slice_counts(engine, ds)
    assert sum(counts.values()) == ds.n_slices and min(counts) >= 1
