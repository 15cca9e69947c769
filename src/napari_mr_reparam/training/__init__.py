"""Training, data generation and evaluation behind ``napari-mr-reparam-train``."""
