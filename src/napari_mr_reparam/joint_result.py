"""The maps a joint fit returns (:class:`JointMaps`), and the engine's single-image maps
and renders it stands on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import physics
from .fit_information import DEFAULT_PRIOR_SD, PARAMETERS, acquisition_values, information, make_acquisition, solve3
from .parallel import over_planes
from .peaks import clip_overshoot as _clip_overshoot

#: Bits of :attr:`JointMaps.determined_bits`.
BITS = {"pd": 1, "t1": 2, "t2": 4}


#: What a PD map holds: the network's maps of one input give the tissue's proton density
#: as a fraction of water's; a joint fit's PD is in the first input's intensity units.
PD_UNITS = {"network": "fraction of water's proton density (the network's estimate)",
            "joint": "relative (the first input's intensity units)"}


@dataclass(repr=False)  # its arrays would fill a terminal: __repr__ says what it holds
class JointMaps:
    """PD, T1 and T2 (ms) maps of one subject; PD in the first input's intensity units, or,
    of one input, the network's fraction of water's proton density (:data:`PD_UNITS`).

    ``determined`` holds one boolean map per parameter (True where the inputs determine
    it, False where it came from the prior); ``scales`` each input's gain relative to the
    first; ``acquisitions`` the inputs' (:class:`~napari_mr_reparam.fit_information.AcquisitionValues`); ``b1`` the refocusing
    flip-angle scale fitted from a multi-echo train (1: 180 degrees at the slice centre; NaN
    where no train was fitted), None without one; ``noise`` each input's noise as a fraction
    of its bright signal, as the fit took it (:func:`image_noise.estimate_noise`);
    ``prior_source`` where what the inputs leave open came from: ``"network"`` (the network's maps),
    ``"given"`` (maps passed to :func:`~napari_mr_reparam.joint_fit.fit_maps`) or ``"default"`` (a broad prior, T1 1000 ms
    and T2 100 ms); ``prior_parameters`` the maps the prior holds (PD as well as T1 and T2
    where the inputs measure neither time); ``resampled`` the names of inputs that were
    brought onto the first input's grid (:mod:`.grids`) before the fit, set by the caller
    that resampled them; ``registered`` each registered input's name and motion against
    the first (:class:`~napari_mr_reparam.registration.Motion`), likewise set by the
    caller; ``partly_measured`` the share of the object that only some inputs measured
    (outside the others' fields of view; :func:`~napari_mr_reparam.joint_fit.joint_maps` fits it to those inputs alone)
    and ``partly_prior`` what fills in what they leave open there (``"network"``: its read
    of the first input; ``"default"``); ``sigma`` each input's noise in its own units, as
    the fit took it (``noise`` times the input's bright signal); ``averaged`` about how
    many like voxels each voxel's inputs were averaged over before the fit (the smoothing's
    weights, :func:`edge_smoothing.smooth_inputs`; None without smoothing). Background
    voxels (no input signal) have PD, T1 and T2 of 0 and render as 0. From a single input
    the maps are the network's (``network_maps`` holds them, and renders go through the
    engine as before); ``engine`` is the network's wherever it took part (one input, or the
    prior), so that an output names its weights (:attr:`weights_sha256`).
    """

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    determined: dict
    acquisitions: list
    scales: list = field(default_factory=list)
    free: dict = field(default_factory=dict)
    network_maps: object = None
    engine: object = None
    b1: np.ndarray | None = None
    echo_train: str = "ideal"
    noise: list = field(default_factory=list)
    prior_source: str = "default"
    prior_parameters: tuple = ("t1", "t2")
    resampled: tuple = ()
    registered: tuple = ()
    partly_measured: float = 0.0
    partly_prior: str = "default"
    sigma: list = field(default_factory=list)
    averaged: np.ndarray | None = None
    gains_found: tuple = ()

    def slices(self, rows) -> JointMaps:
        """The maps of some slices only (the first axis; ``rows`` an index array or slice),
        to render those slices: a render is made plane by plane, so theirs equals the
        volume's."""
        from dataclasses import replace

        pick = {k: getattr(self, k)[rows] for k in PARAMETERS}
        pick["determined"] = {k: v[rows] for k, v in self.determined.items()}
        for key in ("b1", "averaged"):
            value = getattr(self, key)
            pick[key] = None if value is None else value[rows]
        if self.network_maps is not None:
            pick["network_maps"] = self.network_maps.slices(rows)
        return replace(self, **pick)

    @property
    def determined_bits(self) -> np.ndarray:
        """uint8 bitmask per voxel: 1 PD, 2 T1, 4 T2 (:data:`BITS`)."""
        bits = np.zeros(self.pd.shape, np.uint8)
        for key, bit in BITS.items():
            bits |= self.determined[key].astype(np.uint8) * np.uint8(bit)
        return bits

    def summary(self) -> dict:
        """Fraction of object voxels in which each parameter is determined, and the inputs."""
        body = self.pd > 0
        n = max(int(body.sum()), 1)
        return {"determined_fraction": {k: round(float((self.determined[k] & body).sum()) / n, 4)
                                        for k in PARAMETERS},
                "free_parameters": dict(self.free),
                "scales": [float(s) for s in self.scales],
                **({"series_gains_found": list(self.gains_found)} if self.gains_found else {}),
                "noise": [round(float(n), 5) for n in self.noise],
                "prior_source": self.prior_source,
                "prior_parameters": list(self.prior_parameters),
                "echo_train": self.echo_train,
                "inversion_efficiency": self.inversion_efficiency,
                "resampled_onto_first_grid": list(self.resampled),
                "partly_measured_fraction": self.partly_measured,
                "partly_measured_prior": self.partly_prior,
                "registered_onto_first": {name: {"rotation_deg": round(m.rotation_deg, 3),
                                                 "largest_shift_mm": round(m.shift_mm, 3),
                                                 "matrix_ras_mm": np.round(m.matrix, 6).tolist()}
                                          for name, m in self.registered}}

    @property
    def inversion_efficiency(self) -> float | None:
        """The inversion efficiency the inversion-recovery inputs were fitted with (None without one)."""
        values = [a.inversion for a in self.acquisitions
                  if getattr(a, "sequence", None) == "inversion_recovery" and hasattr(a, "inversion")]
        return float(values[0]) if values else None

    @property
    def weights_sha256(self) -> str | None:
        """The sha256 of the network weights that went into the maps (its maps of one input,
        or its prior where the inputs leave a parameter open), for an output's records; None
        for a fit the network took no part in."""
        used = self.network_maps is not None or "network" in (self.prior_source, self.partly_prior)
        return (self.engine.info.sha256 or None) if used and self.engine is not None else None

    def __repr__(self) -> str:
        determined = ", ".join(f"{k.upper()} {100 * float(np.mean(v)):.0f} %" for k, v in self.determined.items())
        return (f"JointMaps(shape {np.shape(self.pd)}, {len(self.acquisitions)} input(s), PD, T1, T2 (ms) maps; "
                f"determined by the inputs in {determined or 'none'} of the voxels; prior {self.prior_source})")

    def render(self, te_ms: float, tr_ms: float, sequence: str = "spin_echo",
               ti_ms: float | None = None, flip_deg: float | None = None,
               inversion: float | None = None, clip_overshoot: bool = True, *, ti2_ms: float | None = None,
               **extra) -> np.ndarray:
        """The image at any acquisition, in the first input's intensity units (times in ms;
        ``ti2_ms``, a double inversion recovery's second inversion time, as
        :class:`~napari_mr_reparam.acquisition.Acquisition` names them; ``extra``: further
        keywords of :func:`~napari_mr_reparam.physics.render`).

        An inversion recovery is rendered with the inversion efficiency ``inversion``;
        by default the one the inversion-recovery inputs were fitted with (the scanner's
        own inversion, as a scan of it at another TI has it), 1 (a perfect inversion)
        without such inputs. With ``clip_overshoot`` (joint maps), a voxel above the
        brightest level that five of the nine voxels of some 3x3 neighbourhood of its plane
        reach is lowered towards that level by at most the render's standard error there
        (:func:`~napari_mr_reparam.peaks.clip_overshoot`, :meth:`_render_error`): where the
        inputs measure a long T1 loosely, fit noise lifts single fluid voxels a few per cent
        above their neighbours, and an image shown or scored at its own maximum is scaled
        by the highest of them; a structure brighter than its error explains stays.
        Impossible values and times that can only be seconds are a one-line ``ValueError``
        (:class:`~napari_mr_reparam.acquisition.Acquisition`).
        """
        from .acquisition import Acquisition, refuse_unread

        refuse_unread(sequence, ti_ms=ti_ms, ti2_ms=ti2_ms, flip_deg=flip_deg)  # a TI for a spin echo: said
        Acquisition(te_ms, tr_ms, sequence, ti_ms, flip_deg, ti2_ms)  # checks the values
        if self.network_maps is not None:  # one input: the engine renders its maps, as the widget does
            if inversion is not None:
                raise ValueError("an inversion efficiency is the inputs' own: renders at one need two or "
                                 "more inversion-recovery inputs (joint maps)")
            if extra:
                raise ValueError(f"{', '.join(sorted(extra))}: the engine renders one input's maps at an "
                                 "Acquisition's values only (TE, TR, sequence, TI, TI2, flip angle)")
            return network_render(self.engine, self.network_maps, te_ms, tr_ms, sequence, ti_ms,
                                  flip_deg, ti2_ms).reshape(self.pd.shape)
        if inversion is None:
            inversion = self.inversion_efficiency or 1.0

        def at(pd, t1, t2):
            return np.asarray(physics.render(sequence, pd, t1, t2, te_ms, tr_ms, ti=ti_ms, flip_deg=flip_deg,
                                             ti2=ti2_ms, inversion_efficiency=inversion, **extra))

        signal = np.empty(np.shape(self.pd), np.float32)

        def part(rows):  # element-wise: runs of planes on several threads
            signal[rows] = at(self.pd[rows], self.t1[rows], self.t2[rows])
        over_planes(part, len(signal))
        if not (clip_overshoot and self.sigma):
            return signal
        return _clip_overshoot(signal, spread=lambda where: self._render_error(where, at))

    def _render_error(self, where: np.ndarray, render) -> np.ndarray:
        """Standard error of ``render(pd, t1, t2)`` at the flat voxel indices ``where`` that
        the inputs' noise (:attr:`sigma`, over :attr:`averaged` voxels) leaves in the fitted
        maps. What the inputs leave open is held by the prior, not moved by the noise, and
        adds nothing (the broadest prior a fit takes, :data:`DEFAULT_PRIOR_SD` in log T1 and
        log T2, stands in for the fit's own)."""
        import torch

        pd, t1, t2 = (np.asarray(np.asarray(getattr(self, k)).reshape(-1)[where], np.float64) for k in PARAMETERS)
        step = 1e-3
        up, down = math.exp(step), math.exp(-step)
        slopes = (render(pd, t1, t2),  # a render is proportional to PD
                  (render(pd, t1 * up, t2) - render(pd, t1 * down, t2)) / (2 * step),
                  (render(pd, t1, t2 * up) - render(pd, t1, t2 * down)) / (2 * step))
        t = [torch.from_numpy(np.asarray(v, np.float64)) for v in (pd, t1, t2)]
        info = information(self.acquisitions, self.scales or [1.0] * len(self.sigma), self.sigma, *t, torch)
        if self.averaged is not None:  # an average of n like voxels holds 1/n of one's noise variance
            count = torch.from_numpy(np.asarray(np.asarray(self.averaged).reshape(-1)[where], np.float64))
            info = [c * count for c in info]
        # the estimate's spread from the noise: C A C for A the data's information and C the
        # inverse of A plus a prior (the broadest any fit takes), which holds what the inputs
        # leave open, so that noise does not move it
        loose = 1.0 / DEFAULT_PRIOR_SD**2
        held = [c + loose if n in (3, 5) else c for n, c in enumerate(info)]
        held[0] = held[0] + 1e-10 * held[0].clamp_min(1e-30)
        g = [torch.from_numpy(np.asarray(v, np.float64)) for v in slopes]
        y, _ = solve3(held, g)
        a00, a01, a02, a11, a12, a22 = info
        variance = (a00 * y[0] ** 2 + a11 * y[1] ** 2 + a22 * y[2] ** 2
                    + 2 * (a01 * y[0] * y[1] + a02 * y[0] * y[2] + a12 * y[1] * y[2])).numpy()
        return np.sqrt(np.where(np.isfinite(variance) & (variance >= 0), variance, np.inf))


def network_maps(engine, image, acq, **calls):
    """The engine's single-image maps of ``image`` at acquisition ``acq``; ``calls`` (the
    engine's ``options``, ``progress``, ``cancelled``) go to its ``compute_maps``. Voxels
    no input measured (NaN, or infinite) are read as 0; an image without them is passed as it is."""
    if not np.isfinite(image).all():
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    v = acquisition_values(acq)
    given = {k: value for k, value in calls.items() if value is not None}
    return engine.compute_maps(image, make_acquisition(v.sequence, v.te, v.tr, v.ti, v.flip_deg), **given)


def network_render(engine, qmaps, te_ms, tr_ms, sequence="spin_echo", ti_ms=None, flip_deg=None, ti2_ms=None):
    """The engine's render of its maps at a target (input units, peak-normalized per slice);
    ``ti2_ms``: a double inversion recovery's second inversion time."""
    from .acquisition import Acquisition

    return engine.render(qmaps, Acquisition(te_ms, tr_ms, sequence, ti_ms, flip_deg, ti2_ms))
