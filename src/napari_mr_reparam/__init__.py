"""MR image re-parameterization: predict a scan at another TE/TR from the one you have.

The core (physics, phantoms, simulator, models, inference, metrics, I/O) is Qt-free;
the napari contributions live in the ``_reader``, ``_writer``, ``_sample_data`` and
``_widget`` modules and are only imported by napari.
"""

__version__ = "0.1.0"

#: The acquisition of the Default-to-Param input image, in milliseconds.
DEFAULT_TE_MS = 50.0
DEFAULT_TR_MS = 4500.0
#: The physics model's data-consistency weight unless told otherwise (see
#: :meth:`napari_mr_reparam.models.physics_net.PhysicsNet.consistent_maps`).
DEFAULT_CONSISTENCY = 0.75
