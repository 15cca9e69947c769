import numpy as np

from napari_mr_reparam._sample_data import make_sample_all, make_sample_ground_truths, make_sample_head


def test_sample_layers():
    layers = make_sample_all()
    assert len(layers) == 4
    (head, head_kw, kind), *truths = layers
    assert kind == "image" and head.dtype == np.float32 and head.shape == (24, 256, 256)
    assert head_kw["name"] == "head TE50 TR4500"
    assert head_kw["metadata"]["te_ms"] == 50.0 and head_kw["metadata"]["tr_ms"] == 4500.0
    assert head_kw["metadata"]["sequence"] == "spin_echo" and head_kw["metadata"]["phantom"]
    assert len(head_kw["scale"]) == 3 and all(s > 0 for s in head_kw["scale"])
    assert head.max() > 500 and (head > 0).mean() > 0.1
    expected = [(20.0, 600.0), (20.0, 6000.0), (120.0, 6000.0)]
    assert [(kw["metadata"]["te_ms"], kw["metadata"]["tr_ms"]) for _, kw, _ in truths] == expected
    for data, kw, _ in truths:
        assert data.shape == head.shape and data.dtype == np.float32 and data.max() > 0
        assert f"TE{kw['metadata']['te_ms']:g} TR{kw['metadata']['tr_ms']:g}" in kw["name"]
        assert kw["scale"] == head_kw["scale"]
    t1w, t2w = truths[0][0], truths[2][0]
    assert np.abs(t1w - t2w).mean() > 0.05 * t2w.max()


def test_ground_truths_match_all():
    truths = make_sample_ground_truths()
    assert [kw["name"] for _, kw, _ in truths] == [kw["name"] for _, kw, _ in make_sample_all()[1:]]


def test_sample_copies_are_independent():
    a, b = make_sample_head()[0], make_sample_head()[0]
    a[0][0, 0, 0] = -1
    a[1]["metadata"]["te_ms"] = 1
    assert b[0][0, 0, 0] != -1 and b[1]["metadata"]["te_ms"] == 50.0


def test_sample_menu_entries(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mr-reparam", "head_and_truths")
    assert [layer.name for layer in viewer.layers] == [
        "head TE50 TR4500", "head TE20 TR600", "head TE20 TR6000", "head TE120 TR6000"]
    assert viewer.dims.axis_labels == ("slice", "y", "x")
