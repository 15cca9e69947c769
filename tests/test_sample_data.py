import numpy as np

from napari_mr_reparam._sample_data import make_sample_all, make_sample_head


def test_sample_layers():
    layers = make_sample_all()
    assert len(layers) == 4
    (head, head_kw, kind), *truths = layers
    assert kind == "image" and head.dtype == np.float32 and head.shape[0] == 24
    assert head_kw["metadata"]["te_ms"] == 50.0 and "TE50 TR4500" in head_kw["name"]
    for data, kw, _ in truths:
        assert data.shape == head.shape
        meta = kw["metadata"]
        assert f"TE{meta['te_ms']:g} TR{meta['tr_ms']:g}" in kw["name"]
        assert data.max() > 0
    t1w, t2w = truths[0][0], truths[2][0]
    assert np.abs(t1w - t2w).mean() > 0.05 * t2w.max()


def test_sample_copies_are_independent():
    a, b = make_sample_head()[0], make_sample_head()[0]
    a[0][0, 0, 0] = -1
    a[1]["metadata"]["te_ms"] = 1
    assert b[0][0, 0, 0] != -1 and b[1]["metadata"]["te_ms"] == 50.0
