"""Scans that moved between series, registered onto the first (napari_mr_reparam.registration)."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from napari_mr_reparam import physics
from napari_mr_reparam.cli import main
from napari_mr_reparam.grids import on_one_grid
from napari_mr_reparam.io import Volume, load_volume
from napari_mr_reparam.inference import Cancelled
from napari_mr_reparam.registration import find_motion, registered, work_units

SHAPE = (48, 48, 40)  # file axes x, y, z at 2 mm
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = -np.array(SHAPE) + 1.0  # the grid's centre at the origin


def _head(seed=0):
    """PD, T1, T2 of a blobby ellipsoid: a few tissues in smooth random patches."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    inside = ((grid / np.array([0.8, 0.9, 0.75])[:, None, None, None]) ** 2).sum(0) < 1
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.5)
    tissue = np.digitize(field, np.quantile(field, [0.3, 0.6])) * inside + inside
    pd = np.array([0, 0.7, 0.8, 1.0])[tissue]
    t1 = np.array([1, 600, 1000, 3000])[tissue]
    t2 = np.array([1, 60, 90, 400])[tissue]
    return pd, t1, t2


def _turn(degrees, shift_mm):
    """A rigid motion about the grid's centre: ``degrees`` about z and half as much about x."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    out = np.eye(4)
    out[:3, :3] = about_z @ about_x
    out[:3, 3] = shift_mm
    return out


def _scans(tmp_path, motion):
    """A T1-weighted scan in place and a T2-weighted one whose head moved by ``motion``
    (its voxels hold the same anatomy, its affine places them where the head went)."""
    pd, t1, t2 = _head()
    paths = []
    for name, te, tr, affine in (("t1w", 15, 500, AFFINE), ("t2w", 100, 3000, motion @ AFFINE)):
        image = np.asarray(physics.spin_echo(pd, t1, t2, te, tr), np.float32) * 1000
        nib.save(nib.Nifti1Image(image, affine), tmp_path / f"{name}.nii.gz")
        paths.append(str(tmp_path / f"{name}.nii.gz"))
    return paths


def _corner_error(found, true):
    corners = np.array([[i, j, k, 1.0] for i in (0, SHAPE[0] - 1) for j in (0, SHAPE[1] - 1)
                        for k in (0, SHAPE[2] - 1)]) @ AFFINE.T
    return float(np.linalg.norm(corners @ (found - true).T, axis=1).max())


def test_a_turned_and_shifted_scan_of_another_contrast_is_found_where_it_moved(tmp_path):
    motion = _turn(4.0, [3.0, -2.0, 1.5])
    fixed, moved = (load_volume(p) for p in _scans(tmp_path, motion))
    found = find_motion(fixed, moved)
    assert _corner_error(found.matrix, motion) < 1.0  # half a voxel
    assert 3.5 < found.rotation_deg < 5.5 and found.shift_mm > 3.0
    volumes, motions = registered([fixed, moved])
    assert motions[0] is None and np.allclose(motions[1].matrix, found.matrix, atol=1e-6)
    assert np.array_equal(volumes[1].data, moved.data)  # only the placement changes
    on_grid, _ = on_one_grid(volumes)
    pd, t1, t2 = _head()
    truth = np.asarray(physics.spin_echo(pd, t1, t2, 100, 3000), np.float32) * 1000
    inner = np.zeros(SHAPE, bool)
    inner[8:-8, 8:-8, 8:-8] = True
    truth_stack = load_volume(_save(tmp_path, truth)).data
    inner_stack = load_volume(_save(tmp_path, inner.astype(np.float32), "inner")).data > 0
    before = np.nanmean(np.abs(on_one_grid([fixed, moved])[0][1].data - truth_stack)[inner_stack])
    after = np.nanmean(np.abs(on_grid[1].data - truth_stack)[inner_stack])
    assert after < before / 3  # on the first grid again: within half a voxel, taken voxel by voxel


def _save(tmp_path, data, name="truth"):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), AFFINE), tmp_path / f"{name}.nii.gz")
    return tmp_path / f"{name}.nii.gz"


def test_scans_that_did_not_move_stay_in_place(tmp_path):
    fixed, still = (load_volume(p) for p in _scans(tmp_path, np.eye(4)))
    assert _corner_error(find_motion(fixed, still).matrix, np.eye(4)) < 0.5


@pytest.mark.parametrize("which, message", [("unplaced", "has no affine"), ("thin", "at least 8 voxels along every axis")])
def test_inputs_that_cannot_be_registered_are_refused_in_one_line(tmp_path, which, message):
    fixed = load_volume(_scans(tmp_path, np.eye(4))[0])
    if which == "unplaced":
        other = Volume(data=np.ones((40, 48, 48), np.float32), kind="image", source="plain")
    else:
        nib.save(nib.Nifti1Image(np.ones((48, 48, 4), np.float32), AFFINE), tmp_path / "thin.nii.gz")
        other = load_volume(tmp_path / "thin.nii.gz")
    with pytest.raises(ValueError, match=message) as err:
        find_motion(fixed, other)
    assert "\n" not in str(err.value)


def test_maps_register_moved_inputs_and_record_the_motion(tmp_path, capsys):
    files = _scans(tmp_path, _turn(3.0, [2.0, 1.0, 0.0]))
    out = tmp_path / "maps"
    rc = main(["maps", *files, "--input-te", "15", "100", "--input-tr", "500", "3000", "--model", "none",
               "--register", "-o", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert f"notice: {files[1]} registered onto {files[0]}: moved " in err
    assert "without motion between them" not in err
    record = json.loads((out / "maps.json").read_text())["registered_onto_first"]
    assert list(record) == [files[1]] and 2.0 < record[files[1]]["rotation_deg"] < 4.5


def test_a_motion_beyond_what_a_head_does_is_refused_as_a_failure(tmp_path, monkeypatch):
    """A registration that ends far off (as one that diverges does) is refused, not applied:
    here the limits are lowered below the 3.6 mm the scans really moved."""
    import napari_mr_reparam.registration as registration

    fixed, moved = (load_volume(p) for p in _scans(tmp_path, _turn(4.0, [3.0, -2.0, 1.5])))
    monkeypatch.setattr(registration, "MOST_SHIFT_MM", 1.0)
    with pytest.raises(ValueError, match="more than a head moves between series") as err:
        find_motion(fixed, moved)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(registration, "MOST_SHIFT_MM", 30.0)
    monkeypatch.setattr(registration, "MOST_ROTATION_DEG", 2.0)
    with pytest.raises(ValueError, match="more than a head moves between series"):
        find_motion(fixed, moved)


def test_images_of_one_dicom_series_share_one_registration(tmp_path, monkeypatch):
    """Echoes of one series did not move against each other: the reference's echoes stay,
    and a later series is registered once for all its echoes."""
    from dataclasses import replace

    import napari_mr_reparam.registration as registration

    first, later = (load_volume(p) for p in _scans(tmp_path, _turn(3.0, [2.0, 0.0, 0.0])))
    tag = lambda v, uid: replace(v, extra={**(v.extra or {}), "series_uid": uid})  # noqa: E731
    volumes = [tag(first, "1.2.1"), tag(first, "1.2.1"), tag(later, "1.2.2"), tag(later, "1.2.2")]
    calls = []
    real = registration.find_motion
    monkeypatch.setattr(registration, "find_motion", lambda a, b, **kw: calls.append(1) or real(a, b, **kw))
    out, motions = registered(volumes)
    assert len(calls) == 1 and motions[:2] == [None, None] and motions[2] is motions[3]
    assert np.allclose(out[2].affine, out[3].affine) and np.array_equal(out[1].affine, first.affine)


def test_registration_counts_its_progress_and_stops_when_cancelled(tmp_path):
    """Each further input reports its share of the work once placed; a cancel asked during
    the optimizer's iterations stops it there, one asked before an input stops before it."""
    fixed, moved = (load_volume(p) for p in _scans(tmp_path, _turn(3.0, [2.0, 0.0, 0.0])))
    done = []
    registered([fixed, moved, moved], progress=done.append)
    assert sum(done) == work_units(fixed.data.shape, 2) == 2 * fixed.data.shape[0] and len(done) == 2

    asked = []

    def cancel_on_fifth_iteration():
        asked.append(1)
        return len(asked) >= 5

    with pytest.raises(Cancelled):
        find_motion(fixed, moved, cancelled=cancel_on_fifth_iteration)
    assert len(asked) == 5  # asked at each iteration; none after the stop
    done.clear()
    with pytest.raises(Cancelled):
        registered([fixed, moved], progress=done.append, cancelled=lambda: True)
    assert done == []


def test_a_pair_whose_registrations_both_ways_disagree_is_refused(tmp_path, monkeypatch):
    """Scans of like voxels are registered both ways; two motions that disagree (here the
    limit is lowered below the 0.1-0.3 mm they really differ by) mean a wrong optimum, and
    the result is refused in one line rather than applied."""
    import napari_mr_reparam.registration as registration

    fixed, moved = (load_volume(p) for p in _scans(tmp_path, _turn(3.0, [2.0, 0.0, 0.0])))
    calls = []
    real = registration._register
    monkeypatch.setattr(registration, "_register", lambda a, b, c=None: calls.append(1) or real(a, b, c))
    find_motion(fixed, moved)
    assert len(calls) == 2  # both ways
    monkeypatch.setattr(registration, "MOST_DISAGREEMENT_MM", 0.01)
    with pytest.raises(ValueError, match="is not the same both ways") as err:
        find_motion(fixed, moved)
    assert "\n" not in str(err.value)


def test_a_scan_of_much_larger_voxels_is_registered_one_way(tmp_path, monkeypatch):
    """The thick scan is the one the metric samples; the other way would sample the fine
    scan's grid, which drifts with thick slabs, so there is no second registration."""
    import napari_mr_reparam.registration as registration

    path = _scans(tmp_path, np.eye(4))[0]
    fixed = load_volume(path)
    image = np.asarray(nib.load(path).dataobj)
    thick = (image[:, :, 0::2] + image[:, :, 1::2]) / 2  # slabs twice as thick: voxels twice the volume
    affine = AFFINE.copy()
    affine[2, 2] = 4.0
    affine[2, 3] += 1.0  # a slab's centre between the two slices it averages
    nib.save(nib.Nifti1Image(thick.astype(np.float32), affine), tmp_path / "thick.nii.gz")
    calls = []
    real = registration._register
    monkeypatch.setattr(registration, "_register", lambda a, b, c=None: calls.append(1) or real(a, b, c))
    found = find_motion(fixed, load_volume(tmp_path / "thick.nii.gz"))
    assert len(calls) == 1 and found.shift_mm < 3.0
