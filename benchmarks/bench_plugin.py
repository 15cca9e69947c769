"""Plugin benchmark: slider-to-updated-slice latency and whole-volume time, per model.

Drives the real widget in a real napari viewer (run it under Xvfb on a machine without
a display) with the sample head (24 slices, 256x256):

    xvfb-run -a python benchmarks/bench_plugin.py [--models d2p p2p] [--device cpu] [--moves 30]
                                                  [--slices N] [--joint] [--truth] [--integer]

Latency is measured from setting the TE slider to the moment the prediction layer shows
the new value on the slice in view (it includes the widget's debounce delay). ``--slices
N`` repeats the head's slices to N (a volume of a real scan's depth); ``--joint`` adds the
head's TE 20 / TR 600 ms image as a second input of the physics model (joint maps, fitted
once, then rendered); ``--truth`` keeps the demo's ground truth (TE 120 / TR 6000 ms), so
each update also compares with it. "Longest GUI stall" is the longest the GUI thread was
held at once while whole volumes re-rendered (one event-loop pass, or the click that asks
for the volume): what a person feels as a frozen viewer. ``--integer`` stores every image
as 16-bit integers (0-4095, as DICOM series and many NIfTI scans store them) rather than
float32. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _wait(app, condition, timeout=120.0) -> float:
    """Process events until ``condition()``; the longest single pass (s)."""
    end, longest = time.perf_counter() + timeout, 0.0
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the widget did not finish in time")
        start = time.perf_counter()
        app.processEvents()
        longest = max(longest, time.perf_counter() - start)
        time.sleep(0.001)
    return longest


def bench_model(model: str, device: str, moves: int, slices: int | None = None, joint: bool = False,
                truth: bool = False, integer: bool = False) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam.demo import open_demo

    viewer, widget = open_demo(napari.Viewer(show=False), model=model, device=device, run=False)
    app = QApplication.instance()
    if not truth:
        widget.ground_truth.value = None
    if slices:
        for layer in viewer.layers:
            data = np.asarray(layer.data)
            layer.data = np.resize(data, (slices, *data.shape[1:]))  # the head's slices, repeated
    if integer:
        for layer in viewer.layers:
            data = np.asarray(layer.data, np.float64)
            layer.data = np.round(data * (4095 / max(float(data.max()), 1e-12))).astype(np.uint16)
    if joint:
        widget.add_input_row().layer.value = viewer.layers[1]  # the TE 20 / TR 600 ms image
    idle = widget.is_idle
    widget.run.clicked.emit()  # warm-up: loads the model
    _wait(app, idle)
    widget._volume_timer.setInterval(10**6)  # measure the preview path alone
    viewer.dims.set_current_step(0, 12)
    done = ("Done (volume)", "Rendered from the maps", "Rendered from the joint maps")
    pred = lambda: next(l for l in viewer.layers if l.metadata.get("mr_reparam_role") == "prediction")  # noqa: E731
    latencies = []
    for te in np.linspace(25, 400, moves):
        start = time.perf_counter()
        widget.te.value = float(round(te, 1))
        _wait(app, lambda: idle() and pred().metadata.get("te_ms") == float(round(te, 1)))
        latencies.append(time.perf_counter() - start)
    volume_times, stalls = [], []
    for _ in range(3):
        widget.status.value = ""
        start = time.perf_counter()
        widget.run.clicked.emit()
        click = time.perf_counter() - start
        longest = _wait(app, lambda: idle() and widget.status.value.startswith(done)
                        and "slice" not in widget.status.value)
        volume_times.append(time.perf_counter() - start)
        stalls.append(max(click, longest))
    device_name = widget._engines.last_device
    viewer.close()
    ms = np.array(latencies) * 1000
    return {"model": model, "device": device_name, "p50": np.percentile(ms, 50),
            "p95": np.percentile(ms, 95), "volume": float(np.median(volume_times)),
            "slices": slices or 24, "joint": joint, "stall": float(np.median(stalls)) * 1000, "truth": truth,
            "dtype": "uint16" if integer else "float32"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["d2p", "p2p"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--slices", type=int, default=None, help="repeat the head's slices to this many")
    parser.add_argument("--joint", action="store_true", help="a second input image: joint maps (physics)")
    parser.add_argument("--truth", action="store_true", help="keep the demo's ground truth (compare each update)")
    parser.add_argument("--integer", action="store_true", help="images as 16-bit integers, as DICOM stores them")
    args = parser.parse_args(argv)
    if args.joint and args.models != ["physics"]:
        parser.error("--joint takes --models physics")
    rows = [bench_model(m, args.device, args.moves, args.slices, args.joint, args.truth, args.integer)
            for m in args.models]
    print("| model | inputs | ground truth | device | slider -> slice p50 (ms) | p95 (ms) | slices | images "
          "| whole volume (s) | longest GUI stall, whole volume (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        inputs = "2 (joint maps)" if r["joint"] else "1"
        print(f"| {r['model']} | {inputs} | {'yes' if r['truth'] else 'no'} | {r['device']} | {r['p50']:.0f} "
              f"| {r['p95']:.0f} | {r['slices']} | {r['dtype']} | {r['volume']:.2f} | {r['stall']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
