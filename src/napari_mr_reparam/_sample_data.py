"""napari's sample-data contribution: the sample head of :mod:`napari_mr_reparam.sample_head`."""

from .sample_head import make_sample_all, make_sample_ground_truths, make_sample_head

__all__ = ["make_sample_all", "make_sample_ground_truths", "make_sample_head"]
