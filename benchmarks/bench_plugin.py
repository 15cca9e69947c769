"""Plugin benchmark: slider-to-updated-slice latency and whole-volume time, per model.

Drives the real widget in a real napari viewer (run it under Xvfb on a machine without
a display) with the sample head (24 slices, 256x256):

    xvfb-run -a python benchmarks/bench_plugin.py [--models d2p p2p] [--device cpu] [--moves 30]

Latency is measured from setting the TE slider to the moment the prediction layer shows
the new value on the slice in view (it includes the widget's debounce delay). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _wait(app, condition, timeout=120.0):
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the widget did not finish in time")
        app.processEvents()
        time.sleep(0.001)


def bench_model(model: str, device: str, moves: int) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam.demo import open_demo

    viewer, widget = open_demo(napari.Viewer(show=False), model=model, device=device, run=False)
    app = QApplication.instance()
    widget.ground_truth.value = None
    idle = lambda: widget._worker is None and widget._queue._pending is None  # noqa: E731
    widget.run.clicked.emit()  # warm-up: loads the model
    _wait(app, idle)
    widget._volume_timer.setInterval(10**6)  # measure the preview path alone
    viewer.dims.set_current_step(0, 12)
    pred = lambda: next(l for l in viewer.layers if l.metadata.get("mr_reparam_role") == "prediction")  # noqa: E731
    latencies = []
    for te in np.linspace(25, 400, moves):
        start = time.perf_counter()
        widget.te.value = float(round(te, 1))
        _wait(app, lambda: idle() and pred().metadata.get("te_ms") == float(round(te, 1)))
        latencies.append(time.perf_counter() - start)
    volume_times = []
    for _ in range(3):
        start = time.perf_counter()
        widget.run.clicked.emit()
        _wait(app, lambda: idle() and widget.status.value.startswith(("Done (volume)", "Rendered from the maps")))
        volume_times.append(time.perf_counter() - start)
    device_name = widget._engines.last_device
    viewer.close()
    ms = np.array(latencies) * 1000
    return {"model": model, "device": device_name, "p50": np.percentile(ms, 50),
            "p95": np.percentile(ms, 95), "volume": float(np.median(volume_times)),
            "slices": int(np.asarray(viewer.layers[0].data).shape[0]) if len(viewer.layers) else 24}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["d2p", "p2p"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--moves", type=int, default=30)
    args = parser.parse_args(argv)
    rows = [bench_model(m, args.device, args.moves) for m in args.models]
    print("| model | device | slider -> slice p50 (ms) | p95 (ms) | whole volume, 24 slices (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['p50']:.0f} | {r['p95']:.0f} | {r['volume']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
