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
