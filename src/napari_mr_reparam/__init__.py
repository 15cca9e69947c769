"""MR image re-parameterization: predict a scan at another TE/TR from the one you have.

Where to start in Python (each name below is importable from this package, and lives in
the module in brackets; times are in milliseconds, volumes are (z, y, x) arrays):

- Read a scan: ``load_volume(path)`` (:mod:`.io`: NIfTI, FreeSurfer, images; a DICOM
  folder too) or ``read_series(folder)`` (:mod:`.dicom`: one volume per acquisition, TE,
  TR, TI and flip angle from the tags); ``load_volumes`` splits a 4-D file.
- Predict one image at another setting: ``Reparameterizer("physics").predict_volume(data,
  te_ms, tr_ms, input_te_ms, input_tr_ms)`` (:mod:`.inference`), or ``.predict(data,
  target, input)`` with ``Acquisition`` objects (:mod:`.acquisition`; ``get_preset("FLAIR")
  .acquisition()`` from :mod:`.presets` for a named contrast); ``.compute_maps`` gives the
  single-image PD, T1 and T2 maps.
- Maps from several scans of one subject: ``joint_maps([a, b, c], [acq_a, acq_b,
  acq_c], engine=Reparameterizer("physics"))`` (:mod:`.joint_fit`; scans on different grids:
  ``on_one_grid``, :mod:`.grids`), then ``maps.render(te_ms, tr_ms, sequence, ti_ms=...)``
  for any contrast, ``maps.pd``, ``maps.t1``, ``maps.t2`` for the maps.
- Write: ``save_volume(path, data, like=volume, te_ms=..., tr_ms=...)``
  (:mod:`.volume_writing`: NIfTI with a BIDS sidecar, a DICOM series for ``.dcm``).
- The signal equations alone: :mod:`.physics` (``physics.render``).

The core (physics, phantoms, simulator, models, inference, metrics, I/O) is Qt-free;
the napari contributions live in the ``_reader``, ``_writer``, ``_sample_data`` and
``_widget`` modules and are only imported by napari. The names above are imported when
first used, so importing the package stays quick.
"""

__version__ = "0.1.0"

#: The acquisition of the Default-to-Param input image, in milliseconds.
DEFAULT_TE_MS = 50.0
DEFAULT_TR_MS = 4500.0
#: The physics model's data-consistency weight unless told otherwise (see
#: :meth:`napari_mr_reparam.models.physics_net.PhysicsNet.consistent_maps`).
DEFAULT_CONSISTENCY = 0.75

#: The public names and the module each comes from (imported when first asked for).
_PUBLIC = {"load_volume": "io", "load_volumes": "io", "read_series": "dicom", "Reparameterizer": "inference",
           "Acquisition": "acquisition", "get_preset": "presets", "get_input_preset": "presets",
           "joint_maps": "joint_fit", "on_one_grid": "grids", "save_volume": "volume_writing"}
__all__ = ["DEFAULT_CONSISTENCY", "DEFAULT_TE_MS", "DEFAULT_TR_MS", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
