"""The simulator's preview grid (preview.py): one row per slice, one column per acquisition."""

import numpy as np
from helpers import tiny_phantom
from PIL import Image

from napari_mr_reparam.preview import PREVIEW_ACQUISITIONS, preview_grid, save_preview


def test_the_preview_grid_and_its_png_name_each_acquisition_in_ms(tmp_path):
    grid, labels = preview_grid(tiny_phantom(), rows=2, size=32)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 32, len(PREVIEW_ACQUISITIONS) * 32)
    first = PREVIEW_ACQUISITIONS[0]
    assert labels[0] == f"TE {first.te_ms:g} / TR {first.tr_ms:g} ms"
    out = save_preview(tiny_phantom(), tmp_path / "preview.png", rows=2, size=32)
    assert Image.open(out).size[0] == len(PREVIEW_ACQUISITIONS) * 32
