"""Preview grids: a few slices of a phantom at several acquisitions, as one labelled image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .phantoms import Phantom
from .simulate import Acquisition, choose_slices, simulate_images

#: Acquisitions of the preview columns: the Default-to-Param input, then contrasts
#: that show the physics (T1-weighted, PD-weighted, T2-weighted, heavily T2-weighted).
PREVIEW_ACQUISITIONS = (
    Acquisition(50, 4500),
    Acquisition(20, 600),
    Acquisition(20, 8000),
    Acquisition(120, 6000),
    Acquisition(400, 9000),
)


def preview_grid(phantom: Phantom, acquisitions=PREVIEW_ACQUISITIONS, rows: int = 3,
                 size: int = 160) -> tuple[np.ndarray, list[str]]:
    """A uint8 grid: ``rows`` slices (rows) by acquisitions (columns), and column labels."""
    slices = choose_slices(phantom, rows, span=(0.35, 0.75))
    columns = [simulate_images(phantom, a, slices, size, pad_square=True) for a in acquisitions]
    grid = np.concatenate([np.concatenate(list(c), axis=0) for c in columns], axis=1)
    labels = [f"TE {a.te_ms:g} / TR {a.tr_ms:g} ms" for a in acquisitions]
    return grid, labels


def save_preview(phantom: Phantom, path: str | Path, **kwargs) -> Path:
    """Write :func:`preview_grid` as a PNG with the acquisitions written above the columns."""
    from PIL import Image, ImageDraw

    grid, labels = preview_grid(phantom, **kwargs)
    header = 18
    canvas = Image.new("L", (grid.shape[1], grid.shape[0] + header), 0)
    canvas.paste(Image.fromarray(grid), (0, header))
    draw = ImageDraw.Draw(canvas)
    column = grid.shape[1] // len(labels)
    for i, text in enumerate(labels):
        draw.text((i * column + 4, 3), text, fill=255)
    path = Path(path)
    canvas.save(path)
    return path
