"""The input-gain diagnostic (benchmarks/bench_input_gain.py): the wrapped engine reads
gained, clipped inputs and everything else unchanged."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_input_gain  # noqa: E402


class _Recorder:
    task, info, renders_from_maps = "d2p", object(), True

    def resolve(self, options=None):
        return ("resolved", options)

    def predict(self, images, *args, **kwargs):
        self.seen = (images, args, kwargs)
        return images


def test_gained_inputs_scale_clip_and_pass_the_rest_through():
    engine = _Recorder()
    wrapped = bench_input_gain.GainedInputs(engine, 1.25)
    assert (wrapped.task, wrapped.info, wrapped.renders_from_maps) == ("d2p", engine.info, True)
    assert wrapped.native_input is False and wrapped.resolve("x") == ("resolved", "x")
    images = np.array([[[0.0, 0.4, 0.9]]], np.float32)
    wrapped.predict(images, "target", "input", progress=None)
    seen, args, kwargs = engine.seen
    assert np.allclose(seen, [[[0.0, 0.5, 1.0]]])  # 0.9 * 1.25 clipped at 1
    assert args == ("target", "input") and kwargs == {"progress": None}
    assert np.allclose(images, [[[0.0, 0.4, 0.9]]])  # the caller's array is untouched
