"""Make the README screenshot: the demo's first view on a 1600x1000 screen.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py [--model physics]
    xvfb-run -a -s "-screen 0 1366x768x24" python docs/make_screenshot.py --screen 1366x768 --out small.png

Opens the demo exactly as ``napari-mr-reparam demo`` does (sample head, widget docked,
grid of input, prediction, ground truth and difference), waits for the prediction and
its metrics, and saves the whole window as ``docs/screenshot.png``. It refuses to run
on a screen of another size than ``--screen`` (default 1600x1000), so the picture shows
what a person with that screen sees.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SCREEN = (1600, 1000)


def main(argv=None) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_mr_reparam.demo import open_demo

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="physics")
    parser.add_argument("--out", default=str(Path(__file__).with_name("screenshot.png")))
    parser.add_argument("--screen", default="x".join(map(str, SCREEN)), help="the screen's size, WxH")
    args = parser.parse_args(argv)
    try:
        want = tuple(int(v) for v in args.screen.lower().split("x"))
        assert len(want) == 2
    except (ValueError, AssertionError):
        parser.error(f"--screen takes WIDTHxHEIGHT, e.g. 1366x768, not {args.screen!r}")

    viewer, widget = open_demo(napari.Viewer(title="napari-mr-reparam"), model=args.model, device="cpu")
    app = QApplication.instance()
    screen = app.primaryScreen().geometry()
    if (screen.width(), screen.height()) != want:
        raise SystemExit(f"the screen is {screen.width()}x{screen.height()}, not {want[0]}x{want[1]}; "
                         f'run under xvfb-run -a -s "-screen 0 {want[0]}x{want[1]}x24"')
    end = time.time() + 300
    while time.time() < end and not (widget.is_idle() and "volume: PSNR" in widget.metrics.value):
        app.processEvents()
        time.sleep(0.02)
    for _ in range(40):  # let the window settle and draw
        app.processEvents()
        time.sleep(0.05)
    window = viewer.window._qt_window
    frame = window.frameGeometry()
    shown = [layer.name for layer in viewer.layers if layer.visible]
    image = viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image

    Image.fromarray(image).save(args.out)
    print(f"wrote {args.out}: window {frame.width()}x{frame.height()} at ({frame.x()}, {frame.y()}) "
          f"on a {screen.width()}x{screen.height()} screen; grid of {', '.join(shown)}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
