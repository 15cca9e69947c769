import nibabel as nib
import numpy as np
import pytest

from napari_mr_reparam import io
from napari_mr_reparam.io import load_volume


def test_axial_stack_orientation(tmp_path):
    data = np.zeros((4, 5, 6), np.float32)  # RAS+: i right, j anterior, k superior
    data[3, 4, 5] = 1  # the most right, anterior, superior voxel
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.6, 0.7, 1])), str(tmp_path / "ras.nii"))
    volume = load_volume(tmp_path / "ras.nii")
    assert volume.data.shape == (6, 5, 4) and volume.spacing == pytest.approx((0.7, 0.6, 0.5))
    # top slice, anterior row first, patient right in the first column (radiological view)
    assert tuple(np.argwhere(volume.data == 1)[0]) == (5, 0, 0)


def test_the_plane_of_a_volumes_slices(tmp_path):
    from napari_mr_reparam.orientation import slice_plane

    nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.float32), np.diag([1.0, 1.0, 3.0, 1.0])), tmp_path / "a.nii.gz")
    assert slice_plane(io.load_volume(tmp_path / "a.nii.gz")) == "axial"  # thick axial slices
    assert slice_plane(io.Volume(np.ones((1, 4, 4), np.float32), kind="image")) is None


@pytest.mark.parametrize("shape, zooms, axis", [
    ((192, 192, 1), (1.3, 1.3, 5.0), 2),  # one slice
    ((192, 1, 192), (1.0, 1.0, 1.0), 1),  # one slice, however thin
    ((48, 4, 40), (1.0, 1.0, 1.0), 1),  # a few slices
    ((64, 20, 64), (1.0, 3.0, 1.0), 1),  # thick slices
    ((20, 30, 12), (0.9, 1.2, 3.0), 2),
    ((160, 192, 224), (1.0, 1.0, 1.0), None),  # a 3-D volume
    ((16, 128, 128), (1.0, 1.0, 1.0), None),  # a 3-D slab: as many slices as a DICOM volume's fewest
    ((40, 40, 12), (1.0, 1.0, 1.4), None),  # near-isotropic, not few
    ((2, 3, 4), (1.0, 1.0, 1.0), None),
    ((1, 1, 10), (1.0, 1.0, 1.0), None),  # two axes would do
    ((4, 40, 40), (1.0, 1.0, 3.0), None),  # few along one axis, thick along another
])
def test_the_axis_a_2d_acquisition_was_sliced_along(shape, zooms, axis):
    from napari_mr_reparam.orientation import acquired_axis

    assert acquired_axis(shape, zooms) == axis
