"""The per-voxel solver's grid start."""

import numpy as np
from helpers import random_maps, render_inputs

from napari_mr_reparam.fit_information import acquisition_values
from napari_mr_reparam.simulate import Acquisition
from napari_mr_reparam.voxel_solver import _first_minimum


def test_subnormal_floats_are_zeroed_and_the_grid_chooses_as_with_them(monkeypatch):
    import torch

    from napari_mr_reparam import voxel_solver
    from napari_mr_reparam.voxel_solver import _no_subnormals, grid_start

    tiny = torch.finfo(torch.float32).tiny
    t = torch.tensor([tiny / 8, -tiny / 8, tiny, 0.0, 1e-20, -3.0])
    np.testing.assert_array_equal(_no_subnormals(t, torch).numpy(), np.float32([0.0, 0.0, tiny, 0.0, 1e-20, -3.0]))
    # a TE of 200 ms: the grid's T2 of 2 ms gives exp(-100), subnormal in float32, and so do
    # products of small signals; zeroed, the grid picks every voxel's start as before
    assert 0 < np.float32(np.exp(-100.0)) < tiny
    pd, t1, t2 = random_maps(shape=(1, 40, 40), seed=3)
    acqs = [acquisition_values(a) for a in (Acquisition(15, 500), Acquisition(200, 4000),
                                            Acquisition(120, 9000, "inversion_recovery", 2500))]
    images = render_inputs(acqs, pd, t1, t2)
    body = pd.reshape(-1) > 0
    s = torch.from_numpy(np.stack([im.reshape(-1)[body] for im in images]))
    prior = {"t1": torch.full((s.shape[1],), np.log(1000.0)), "t2": torch.full((s.shape[1],), np.log(100.0))}

    def pick():
        return grid_start(s, torch.full((3,), 5.0), acqs, [1.0] * 3, {"t1": True, "t2": True}, prior,
                          {"t1": 2.0, "t2": 2.0}, torch, 12)
    zeroed = pick()
    monkeypatch.setattr(voxel_solver, "_no_subnormals", lambda t, torch: t)
    for a, b in zip(zeroed, pick()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_grids_least_cost_is_argmins_first_index_among_ties():
    import torch

    g = torch.Generator().manual_seed(3)
    for columns in (1, 7, 144, 576):
        cost = torch.randint(0, 3, (5000, columns), generator=g).float()  # many equal values per row
        assert torch.equal(_first_minimum(cost), cost.argmin(dim=1))


def test_a_time_that_ran_into_its_bound_is_not_determined_whatever_its_standard_error(monkeypatch):
    import torch

    from napari_mr_reparam import voxel_solver
    from napari_mr_reparam.joint_fit import fit_maps

    # every standard error tiny: only the bound can take a time's determinedness away
    monkeypatch.setattr(voxel_solver, "data_errors", lambda hess, *a, **k: [torch.zeros_like(hess[0])] * 3)
    base = np.zeros((1, 16, 16), np.float32)
    base[:, 4:12, 4:12] = 1000
    # the later echo brighter than the first: T2 runs to its upper bound
    images = [base, base * 1.05, base * 0.5]
    maps = fit_maps(images, [Acquisition(10, 5000), Acquisition(80, 5000), Acquisition(10, 500)], smooth=False)
    inside = base > 0
    assert np.all(maps.t2[inside] > 0.99 * voxel_solver.T2_BOUNDS_MS[1])
    assert not maps.determined["t2"][inside].any()
    assert maps.determined["t1"][inside].all() and maps.determined["pd"][inside].all()
