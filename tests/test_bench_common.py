"""What the benchmarks share (benchmarks/_common.py): one default phantom that the loader
takes, and no benchmark importing another."""

import ast
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _common  # noqa: E402

from helpers import MRILAB_NPZ  # noqa: E402


def test_the_default_phantom_is_a_spec_the_loader_takes():
    kind, _, path = _common.DEFAULT_PHANTOM.partition(":")
    assert kind == "mrilab" and Path(path) == MRILAB_NPZ


def test_benchmarks_import_only_the_shared_helper_and_public_names():
    scripts = {p.stem for p in BENCHMARKS.glob("*.py")}
    for path in BENCHMARKS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                assert top not in scripts - {"_common"}, f"{path.name} imports {node.module}"
                if top == "napari_mr_reparam":
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{path.name} imports private {private} from {node.module}"
            if (isinstance(node, ast.keyword) and node.arg == "default"
                    and isinstance(node.value, ast.Constant) and node.value.value == "mrilab"):
                raise AssertionError(f"{path.name} defaults to the phantom 'mrilab' without its file")


def test_a_moved_head_on_finer_voxels_averages_back_to_the_same_grid():
    import numpy as np

    classes = np.pad(np.random.default_rng(0).integers(0, 5, (12, 14, 14)), ((0, 0), (1, 1), (1, 1)))  # air around
    still = _common.moved_classes(classes, slice(2, 10), np.eye(4))
    assert np.array_equal(still, classes[2:10])  # no motion: the slices as they are
    fine = _common.moved_classes(classes, slice(2, 10), np.eye(4), supersample=2)
    assert fine.shape == (16, 32, 32)
    for k in range(5):  # each 1 mm voxel's eight sub-voxels hold its one class
        assert np.array_equal(_common.block_mean((fine == k).astype(float), (2, 2, 2)), (still == k).astype(float))
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(0.1), -np.sin(0.1)], [np.sin(0.1), np.cos(0.1)]]
    mixed = _common.block_mean((_common.moved_classes(classes, slice(2, 10), turn, 2) == 1).astype(float), (2, 2, 2))
    assert ((mixed > 0) & (mixed < 1)).any()  # moved: voxels at an edge hold part of a class


def test_a_smooth_head_runs_between_the_label_maps_steps():
    import numpy as np

    classes = np.zeros((12, 16, 16), np.int64)
    classes[:, 4:12, 4:12] = 1  # a square column of one tissue in air
    classes[:, 6:10, 6:10] = 2
    fine = _common.moved_classes(classes, slice(2, 10), np.eye(4), supersample=2, smooth=True)
    assert fine.shape == (16, 32, 32) and set(np.unique(fine)) == {0, 1, 2}
    coarse = _common.moved_classes(classes, slice(2, 10), np.eye(4))
    fractions = _common.block_mean((fine == 1).astype(float), (2, 2, 2))
    # without motion most voxels keep their class whole, those at the square's corners
    # hold part of it: the edges are no longer the label map's staircase
    assert np.mean(fractions[coarse == 1] == 1) > 0.5
    assert ((fractions > 0) & (fractions < 1)).any()
    assert (fine[:, :4, :] == 0).all()  # air far from the tissue stays air


def test_the_joint_fits_smoothing_is_held_where_a_benchmark_sets_it(monkeypatch):
    from _common import use_joint_smoothing

    from napari_mr_reparam import joint_fit

    monkeypatch.setattr(joint_fit, "smooth_inputs", joint_fit.smooth_inputs)  # restored after the test
    use_joint_smoothing(2.9, 3.0)
    use_joint_smoothing(None, 2.5)  # each call starts from the package's own function
    assert joint_fit.smooth_inputs.keywords == {"radius": None, "strength": 2.5}  # None: the package's disc or ball
    assert not hasattr(joint_fit.smooth_inputs.func, "keywords")
