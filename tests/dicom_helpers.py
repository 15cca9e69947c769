"""Small DICOM series written with pydicom, for tests of DICOM reading."""

from pathlib import Path

import numpy as np

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def oblique(degrees: float = 20.0) -> tuple:
    """An axial orientation tilted about the patient's left-right axis."""
    a = np.deg2rad(degrees)
    return (1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(np.sin(a)))


def lps_affine(orientation, origin, row_mm, col_mm, step_mm) -> np.ndarray:
    """Voxel (column, row, slice) -> LPS mm, as the DICOM tags define it."""
    o = np.asarray(orientation, float)
    row_cos, col_cos = o[:3], o[3:]
    affine = np.eye(4)
    affine[:3, 0] = row_cos * col_mm
    affine[:3, 1] = col_cos * row_mm
    affine[:3, 2] = np.cross(row_cos, col_cos) * step_mm
    affine[:3, 3] = origin
    return affine


def ras_affine(*args) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine(*args)


def write_series(folder, volumes, *, te=(20.0,), tr=2000.0, ti=None, flip=90.0,
                 orientation=AXIAL, origin=(-30.0, -40.0, 10.0), row_mm=1.5, col_mm=1.25,
                 step_mm=3.0, scanning="SE", variant="SK", drop=(), series_uid=None,
                 shuffle=True, extra=None) -> list[Path]:
    """Write ``volumes[e]`` (uint16-able arrays (z, y, x)) as one DICOM file per slice and echo.

    ``te`` gives each volume's EchoTime (ms); ``ti`` an InversionTime per volume or
    None; ``drop`` names tags left out; ``extra(ds, echo, slice)`` edits a dataset.
    Files are named in a shuffled order so that readers must sort them.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    affine = lps_affine(orientation, origin, row_mm, col_mm, step_mm)
    jobs = [(e, k) for e in range(len(volumes)) for k in range(volumes[e].shape[0])]
    order = np.random.default_rng(0).permutation(len(jobs)) if shuffle else range(len(jobs))
    written = []
    for n, j in enumerate(order):
        e, k = jobs[j]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"IM{n:04d}"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Manufacturer, ds.MagneticFieldStrength = "MR", "ACME", 3.0
        ds.SeriesInstanceUID, ds.SeriesDescription = series_uid, "test series"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.ScanningSequence, ds.SequenceVariant = scanning, variant
        ds.EchoTime, ds.RepetitionTime, ds.FlipAngle = te[e], tr, flip
        if ti is not None:
            ds.InversionTime = ti[e]
        ds.EchoNumbers, ds.InstanceNumber = e + 1, k + 1
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.ImagePositionPatient = [float(v) for v in affine[:3, :3] @ [0, 0, k] + affine[:3, 3]]
        ds.PixelSpacing = [row_mm, col_mm]
        ds.SliceThickness = step_mm
        image = np.asarray(volumes[e][k], np.uint16)
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = image.tobytes()
        for tag in drop:
            if tag in ds:
                delattr(ds, tag)
        if extra is not None:
            extra(ds, e, k)
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        written.append(path)
    return written


def ramp(n=4, h=16, w=16, scale=1.0) -> np.ndarray:
    """A volume whose every voxel differs: 100 + 1000 z + 10 y + x, times ``scale``."""
    z, y, x = np.mgrid[:n, :h, :w]
    return ((100 + 1000 * z + 10 * y + x) * scale).astype(np.float32)


def write_enhanced(path, volumes, *, te=(20.0,), tr=2000.0, ti=None, flip=90.0, orientation=AXIAL,
                   origin=(-30.0, -40.0, 10.0), row_mm=1.5, col_mm=1.25, step_mm=3.0, pulse="SPIN",
                   inversion="NO", acquisition="2D", shuffle=True, philips_scale=None, rescale=None) -> Path:
    """Write ``volumes[e]`` (arrays (z, y, x)) as one enhanced MR image: one frame per slice and
    echo, position, echo time and inversion time per frame, orientation, pixel measures and
    timing shared, frames in a shuffled order. ``philips_scale``: per volume, Philips' private
    scale slope, in each frame's private functional group (and Manufacturer Philips);
    ``rescale``: (RescaleSlope, RescaleIntercept), shared."""
    import pydicom
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    enhanced_mr = "1.2.840.10008.5.1.4.1.1.4.1"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = enhanced_mr
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = enhanced_mr, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.MagneticFieldStrength = "MR", "ACME" if philips_scale is None else "Philips", 3.0
    ds.SeriesInstanceUID, ds.SeriesDescription = generate_uid(), "enhanced test series"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.EchoPulseSequence, ds.InversionRecovery, ds.MRAcquisitionType = pulse, inversion, acquisition
    affine = lps_affine(orientation, origin, row_mm, col_mm, step_mm)
    jobs = [(e, k) for e in range(len(volumes)) for k in range(volumes[e].shape[0])]
    order = np.random.default_rng(1).permutation(len(jobs)) if shuffle else range(len(jobs))
    shared = Dataset()
    orient, measures, timing = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [float(v) for v in orientation]
    measures.PixelSpacing, measures.SliceThickness = [row_mm, col_mm], step_mm
    timing.RepetitionTime, timing.FlipAngle = tr, flip
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    if rescale is not None:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = rescale
        transform.RescaleType = "US"
        shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, pixels = [], []
    for j in order:
        e, k = jobs[j]
        groups, position, echo = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [float(v) for v in affine[:3, :3] @ [0, 0, k] + affine[:3, 3]]
        echo.EffectiveEchoTime = te[e]
        groups.PlanePositionSequence = Sequence([position])
        groups.MREchoSequence = Sequence([echo])
        if ti is not None:
            modifier = Dataset()
            modifier.InversionTimes = [ti[e]]
            groups.MRModifierSequence = Sequence([modifier])
        kind = Dataset()
        kind.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        groups.MRImageFrameTypeSequence = Sequence([kind])
        if philips_scale is not None:
            private = Dataset()
            private.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
            private.add_new((0x2005, 0x100E), "FL", float(philips_scale[e]))
            groups.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
            groups.add_new((0x2005, 0x140F), "SQ", Sequence([private]))
        per_frame.append(groups)
        pixels.append(np.asarray(volumes[e][k], np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.NumberOfFrames = len(pixels)
    ds.Rows, ds.Columns = pixels[0].shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.stack(pixels).tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def write_dicomdir(folder, files) -> Path:
    """Write ``files`` as a DICOM medium in ``folder``, as pydicom's FileSet lays one out: a
    DICOMDIR indexing them and the files in ``PT000000/ST000000/SE000000``. Returns the DICOMDIR."""
    import pydicom
    from pydicom.fileset import FileSet

    needed = {"PatientID": "P1", "StudyInstanceUID": "1.2.826.0.1.3680043.2.1", "StudyDate": "20240101",
              "StudyTime": "120000", "StudyID": "1", "SeriesNumber": 1}  # what a DICOMDIR's records hold
    medium = FileSet()
    for path in files:
        ds = pydicom.dcmread(str(path))
        for keyword, value in needed.items():
            if keyword not in ds:
                setattr(ds, keyword, value)
        medium.add(ds)
    medium.write(str(folder))
    return Path(folder) / "DICOMDIR"
