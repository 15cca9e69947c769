"""Inputs on one grid: resampling by affines (napari_mr_reparam.grids)."""

import nibabel as nib
import numpy as np
import pytest

from napari_mr_reparam.grids import acquired_on_one_grid, on_one_grid, resample_onto, same_grid
from napari_mr_reparam.io import load_volume
from napari_mr_reparam.orientation import stack_affine

WORLD = np.array([0.7, -0.4, 0.25])  # a linear function of position: trilinear interpolation keeps it exactly


def _linear_image(path, shape, affine):
    """A NIfTI file whose voxels hold 100 + WORLD . (RAS position in mm)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    nib.save(nib.Nifti1Image((100 + xyz @ WORLD).reshape(shape).astype(np.float32), affine), path)
    return load_volume(path)


def _affine(sizes, origin, degrees=0.0):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rotation @ np.diag(sizes)
    out[:3, 3] = origin
    return out


def _expected(volume):
    """100 + WORLD . position of every voxel of ``volume``'s stack."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in volume.data.shape], indexing="ij"), -1)
    a = stack_affine(volume)
    return 100 + (grid @ a[:3, :3].T + a[:3, 3]) @ WORLD


def _well_inside(volume, of):
    """Voxels of ``volume``'s stack that lie a voxel or more inside ``of``'s outermost centres."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in volume.data.shape], indexing="ij"), -1)
    to_of = np.linalg.inv(of.affine) @ stack_affine(volume)
    ijk = grid @ to_of[:3, :3].T + to_of[:3, 3]
    return np.all((ijk >= 1) & (ijk <= np.asarray(of.original_shape) - 2), axis=-1)


def test_an_oblique_thick_slab_image_lands_on_the_reference_grid(tmp_path):
    fine = _linear_image(tmp_path / "fine.nii.gz", (40, 44, 30), _affine((1, 1, 1), (-20, -22, -15)))
    slab = _linear_image(tmp_path / "slab.nii.gz", (30, 30, 8), _affine((1.5, 1.5, 4), (-22, -20, -16), 20))
    first, moved = on_one_grid([fine, slab])
    resampled = first[1]
    assert moved == [1] and first[0] is fine
    assert resampled.data.shape == fine.data.shape and resampled.te_ms == slab.te_ms
    assert np.allclose(resampled.affine, fine.affine) and resampled.spacing == fine.spacing
    seen = np.isfinite(resampled.data)
    assert 0.3 < seen.mean() < 1.0  # the slab's field of view covers part of the reference's
    inner = _well_inside(fine, slab)
    assert inner.sum() > 1000 and np.isfinite(resampled.data[inner]).all()
    assert np.abs(resampled.data - _expected(fine))[inner].max() < 1e-3
    assert np.abs(resampled.data - _expected(fine))[seen].max() < 0.7 * 4  # the edge half-voxel: the edge's value
    # and back: the fine image averaged over each thick, turned voxel of the slab's grid
    back = resample_onto(fine, slab)
    inner = _well_inside(slab, fine)
    assert inner.mean() > 0.3 and np.abs(back.data - _expected(slab))[inner].max() < 1e-3


def test_one_grid_stored_in_another_voxel_order_is_the_same_grid(tmp_path):
    affine = _affine((1, 1, 2), (-10, -12, -4))
    first = _linear_image(tmp_path / "a.nii.gz", (20, 24, 5), affine)
    flipped = affine @ np.array([[-1, 0, 0, 19], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    other = _linear_image(tmp_path / "b.nii.gz", (20, 24, 5), flipped)
    assert same_grid(other, first)
    out, moved = on_one_grid([first, other])
    assert moved == [] and out[1] is other and np.allclose(other.data, first.data, atol=1e-4)
    shifted = _linear_image(tmp_path / "c.nii.gz", (20, 24, 5), _affine((1, 1, 2), (-7, -12, -4)))
    assert not same_grid(shifted, first)
    out, moved = on_one_grid([first, shifted])
    assert moved == [1] and np.isnan(out[1].data).any()  # 3 mm of the reference lie outside it


def test_clipped_voxels_come_along_and_fields_of_view_that_miss_are_refused(tmp_path):
    first = _linear_image(tmp_path / "a.nii.gz", (16, 16, 4), _affine((1, 1, 1), (0, 0, 0)))
    coarse = _linear_image(tmp_path / "b.nii.gz", (8, 8, 4), _affine((2, 2, 1), (0.5, 0.5, 0)))
    coarse.extra["saturated"] = np.zeros(coarse.data.shape, bool)
    coarse.extra["saturated"][1, 3, 3] = True
    out, _ = on_one_grid([first, coarse])
    mask = out[1].extra["saturated"]
    assert mask.shape == first.data.shape and 4 <= mask.sum() <= 16
    far = _linear_image(tmp_path / "far.nii.gz", (8, 8, 4), _affine((2, 2, 1), (200, 0, 0)))
    with pytest.raises(ValueError, match=r"^far.nii.gz lies outside the field of view of a.nii.gz"):
        on_one_grid([first, far])
    # known from the affines alone, before any voxel is resampled (the widget says it as a row is chosen)
    from napari_mr_reparam.grids import grid_refusal

    assert grid_refusal([first, far]).startswith("far.nii.gz lies outside the field of view of a.nii.gz")
    assert grid_refusal([first, coarse]) is None
    assert grid_refusal([first, far], registering=True) is None  # registration may move it: judged after


def test_an_input_that_cannot_be_placed_must_have_the_reference_shape(tmp_path):
    import tifffile

    first = _linear_image(tmp_path / "a.nii.gz", (16, 16, 1), _affine((1, 1, 1), (0, 0, 0)))
    tifffile.imwrite(tmp_path / "b.tif", np.ones((16, 16), np.float32))
    tifffile.imwrite(tmp_path / "c.tif", np.ones((12, 16), np.float32))
    same = load_volume(tmp_path / "b.tif")
    out, moved = on_one_grid([first, same])
    assert moved == [] and out[1] is same  # taken voxel by voxel, as before
    with pytest.raises(ValueError, match=r"^the inputs are on different grids \(1x16x16 and 1x12x16\) and c.tif has no affine"):
        on_one_grid([first, load_volume(tmp_path / "c.tif")])


def test_dicom_series_of_other_orientations_land_on_one_grid(tmp_path):
    """An axial and a tilted coronal series of one linear object (values from each voxel's
    position in the tags' LPS mm): the coronal one, read and resampled onto the axial
    series' grid, holds the axial voxels' values."""
    from dicom_helpers import AXIAL, CORONAL, lps_affine, write_series

    from napari_mr_reparam.dicom import read_series

    def values(shape, orientation, origin, row_mm, col_mm, step_mm):
        affine = lps_affine(orientation, origin, row_mm, col_mm, step_mm)
        k, r, c = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        xyz = np.stack([c, r, k, np.ones_like(k)], -1) @ affine.T
        return np.rint(1000 + xyz[..., :3] @ np.array([3.0, 2.0, 5.0])).astype(np.float32)

    axial = dict(orientation=AXIAL, origin=(-20.0, -20.0, -10.0), row_mm=1.0, col_mm=1.0, step_mm=2.0)
    coronal = dict(orientation=CORONAL, origin=(-24.0, 0.0, 14.0), row_mm=1.5, col_mm=1.5, step_mm=3.0)
    write_series(tmp_path / "ax", [values((10, 40, 40), **axial)], **axial)
    write_series(tmp_path / "cor", [values((12, 20, 32), **coronal)], **coronal)
    (ax,), (cor,) = read_series(tmp_path / "ax"), read_series(tmp_path / "cor")
    out, moved = on_one_grid([ax, cor])
    assert moved == [1] and out[1].data.shape == ax.data.shape
    inner = _well_inside(ax, cor)
    assert inner.sum() > 500
    assert np.abs(out[1].data - ax.data)[inner].max() < 1.0  # the tags' rounding only


def test_volumes_acquired_on_one_grid_are_told_apart_from_those_that_are_not(tmp_path):
    from napari_mr_reparam.io import Volume

    affine = _affine((1, 1, 2), (-10, -12, -4))
    first = _linear_image(tmp_path / "a.nii.gz", (20, 24, 5), affine)
    again = _linear_image(tmp_path / "b.nii.gz", (20, 24, 5), affine)
    shifted = _linear_image(tmp_path / "c.nii.gz", (20, 24, 5), _affine((1, 1, 2), (-7, -12, -4)))
    plain = Volume(np.ones((5, 24, 20), np.float32), kind="image")
    assert acquired_on_one_grid(first, again) and not acquired_on_one_grid(first, shifted)
    assert acquired_on_one_grid(plain, Volume(np.zeros((5, 24, 20), np.float32), kind="image"))
    assert not acquired_on_one_grid(plain, first)  # one placed, one not: no common grid


@pytest.mark.parametrize("offset, paired", [(2.9, True), (4.0, False)])
def test_one_slice_scans_whose_slabs_overlap_in_part_are_paired_and_said(tmp_path, offset, paired):
    """Two 2-D series of one plate, 5 mm slices 2.9 mm apart (they share 42 %), are taken
    as one slice, the second moved onto the first's plane; 4 mm apart (they share 20 %),
    none of one falls on the other's grid and they are refused as before."""
    from napari_mr_reparam.grids import slab_note, slab_offset

    first = _linear_image(tmp_path / "a.nii.gz", (20, 20, 1), _affine((1.0, 1.0, 5.0), (0, 0, 0)))
    other = _linear_image(tmp_path / "b.nii.gz", (20, 20, 1), _affine((1.0, 1.0, 5.0), (0.5, 0, offset)))
    assert slab_offset(other, first) == pytest.approx((offset, (5.0 - offset) / 5.0))
    if not paired:
        with pytest.raises(ValueError, match=r"^b.nii.gz lies outside the field of view of a.nii.gz"):
            on_one_grid([first, other])
        return
    out, moved = on_one_grid([first, other])
    assert moved == [1] and np.isfinite(out[1].data[:, :, :-1]).all()  # all but the column it moved out of
    in_plane = out[1].data[0, :, :-1] - 0.25 * offset  # the slice's values less its z (WORLD's z weight)
    assert np.allclose(in_plane, _expected(first)[0, :, :-1], atol=1e-3)
    assert slab_note(out[1]) == " (its slice moved 2.9 mm onto the first's: the slabs share 42 %)"
    assert slab_note(out[0]) == ""


def test_an_input_named_by_a_layer_name_keeps_its_name_in_refusals(tmp_path):
    from dataclasses import replace

    first = _linear_image(tmp_path / "a.nii.gz", (20, 20, 1), _affine((1.0, 1.0, 5.0), (0, 0, 0)))
    far = replace(_linear_image(tmp_path / "b.nii.gz", (20, 20, 1), _affine((1.0, 1.0, 5.0), (0, 0, 40))),
                  source="plate5 TE 8 / TR 2300 ms")
    with pytest.raises(ValueError, match=r"^plate5 TE 8 / TR 2300 ms lies outside the field of view of a.nii.gz"):
        on_one_grid([replace(first, source=str(tmp_path / "a.nii.gz")), far])


@pytest.mark.parametrize("tag, value, says", [
    ("PatientID", "other person", "are scans of different people (their DICOM PatientID differ): joint maps "
                                  "need images of one subject"),
    ("FrameOfReferenceUID", "1.2.3.4", "were scanned in different sessions (their DICOM FrameOfReferenceUID "
                                       "differ), so their affines do not place them together: register them onto "
                                       "the first (--register; the widget's 'Register onto the first image')"),
])
def test_series_of_another_person_or_session_are_not_placed_by_their_affines(tmp_path, tag, value, says):
    from dataclasses import replace

    from dicom_helpers import AXIAL, write_series

    from napari_mr_reparam.dicom import read_series
    from napari_mr_reparam.grids import grid_refusal

    def stated(**tags):
        def edit(ds, echo, k):
            ds.PatientID, ds.FrameOfReferenceUID = "person", "1.2.3"
            for key, v in tags.items():
                setattr(ds, key, v)
        return edit

    grid = dict(orientation=AXIAL, origin=(-20.0, -20.0, -10.0), row_mm=1.0, col_mm=1.0, step_mm=2.0)
    image = np.full((8, 16, 16), 500.0, np.float32)
    write_series(tmp_path / "a", [image], extra=stated(), **grid)
    write_series(tmp_path / "b", [image], extra=stated(), **grid)
    write_series(tmp_path / "c", [image], extra=stated(**{tag: value}), **grid)
    (a,), (b,), (c,) = (read_series(tmp_path / n) for n in "abc")
    assert (a.extra["patient"], a.extra["frame_of_reference"]) == ("person", "1.2.3")
    assert grid_refusal([a, b]) is None  # one person, one session
    with pytest.raises(ValueError) as refused:
        on_one_grid([a, c])
    assert str(refused.value) == f"c and a {says}"
    if tag == "FrameOfReferenceUID":  # registered onto the first, it is placed by its motion
        assert grid_refusal([a, replace(c, extra={**c.extra, "registered": True})]) is None
        thin = [replace(v, data=v.data[:4]) for v in (a, c)]  # too few slices to register
        assert grid_refusal(thin).endswith("do not place them together, and registration needs 8 or more "
                                           "slices: give scans of one session")
        assert grid_refusal([a, c], registering=True) is None  # about to be registered (the widget's check)
