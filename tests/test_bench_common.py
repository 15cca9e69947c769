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
