"""napari writer: an image layer to NIfTI, restoring the original orientation and affine."""

from __future__ import annotations

from .io import save_volume


def write_single_image(path: str, data, meta: dict) -> list[str]:
    """Save one image layer; napari has already asked the user about replacing files."""
    metadata = meta.get("metadata") or {}
    written = save_volume(path, data, like=metadata.get("volume"), te_ms=metadata.get("te_ms"),
                          tr_ms=metadata.get("tr_ms"), model=metadata.get("model"), overwrite=True)
    return [str(written)]
