"""Make the README screenshot: input, prediction, ground truth and difference in a grid.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py [--model d2p]

Opens the demo (sample head, widget docked), predicts the T2-weighted ground truth's
TE/TR, shows the four layers side by side and saves ``docs/screenshot.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> int:
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam.demo import open_demo

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="d2p")
    parser.add_argument("--out", default=str(Path(__file__).with_name("screenshot.png")))
    args = parser.parse_args(argv)

    viewer, widget = open_demo(napari.Viewer(show=True), model=args.model, device="cpu")
    app = QApplication.instance()
    viewer.window._qt_window.resize(1700, 760)
    qt_viewer = viewer.window._qt_viewer
    qt_viewer.dockLayerList.setVisible(False)
    qt_viewer.dockLayerControls.setVisible(False)
    widget.run.clicked.emit()
    end = time.time() + 300
    while time.time() < end and not (widget._worker is None and "volume" in widget.metrics.value):
        app.processEvents()
        time.sleep(0.02)
    truth = widget.ground_truth.value
    keep = [widget.image.value, *[l for l in viewer.layers if l.metadata.get("mr_reparam_role") == "prediction"],
            truth, *[l for l in viewer.layers if l.metadata.get("mr_reparam_role") == "difference"]]
    for layer in viewer.layers:
        layer.visible = layer in keep
    for layer in [l for l in viewer.layers if l not in keep]:
        viewer.layers.remove(layer)
    for position, layer in enumerate(keep):  # the grid shows the layer list bottom first
        viewer.layers.move(viewer.layers.index(layer), position)
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 4)
    viewer.dims.set_current_step(0, 14)
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    from napari.utils.notifications import notification_manager

    notification_manager.records.clear()
    image = viewer.screenshot(canvas_only=False, flash=False)
    share = float(np.mean(image[..., :3].max(axis=-1) > 30))
    from PIL import Image

    Image.fromarray(image).save(args.out)
    print(f"wrote {args.out} ({share:.0%} non-black pixels)")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
