"""Natural images for pretraining the autoencoder, from images that ship with scikit-image.

The paper pretrained on a subset of Places-365, which cannot be fetched offline; the
photographs bundled inside the scikit-image wheel stand in for it. Random crops, flips,
rotations by 90 degrees and contrast changes make many training images from them.
"""

from __future__ import annotations

import numpy as np

#: scikit-image sample images that are inside the wheel (no download).
BUNDLED_IMAGES = (
    "astronaut", "camera", "coins", "moon", "horse", "chelsea", "coffee", "hubble_deep_field",
    "immunohistochemistry", "rocket", "clock", "grass", "gravel", "brick", "retina", "cat",
    "cell", "shepp_logan_phantom", "text", "page",
)


def load_natural_images() -> list[np.ndarray]:
    """The bundled images as grayscale float32 in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float32

    images = []
    for name in BUNDLED_IMAGES:
        image = getattr(skimage.data, name)()
        if image.ndim == 3 and image.shape[-1] == 4:
            image = rgba2rgb(image)
        if image.ndim == 3:
            image = rgb2gray(image)
        images.append(img_as_float32(image))
    return images


class NaturalImages:
    """Random augmented crops of the bundled images, resized to ``size``."""

    def __init__(self, size: int = 256):
        self.size = size
        self.images = load_natural_images()

    def batch(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count, 1, size, size) float32 in [0, 1]."""
        from ..simulate import resize_slices

        crops = [self._crop(rng) for _ in range(count)]
        out = np.stack([resize_slices(c[None], self.size)[0] for c in crops])
        return np.clip(out, 0, 1)[:, None].astype(np.float32)

    def _crop(self, rng) -> np.ndarray:
        image = self.images[rng.integers(len(self.images))]
        side = int(rng.integers(min(image.shape) // 3, min(image.shape) + 1))
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        crop = np.rot90(image[y:y + side, x:x + side], k=int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        gamma = float(np.exp(rng.normal(0, 0.3)))
        return np.ascontiguousarray(crop) ** gamma
