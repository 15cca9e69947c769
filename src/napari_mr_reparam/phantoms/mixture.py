"""Partial volume as a scanner sees it: a voxel's signal is the sum of its tissues' signals.

A voxel that is part grey matter and part CSF holds two pools of water, each relaxing
with its own T1 and T2; its signal at any acquisition is the fraction-weighted sum of
the two tissues' signals. No single (T1, T2) pair decays like that: mixing the times
themselves (one voxel, one T2 between grey matter's 100 ms and CSF's 2000 ms) makes a
cortex voxel with a tenth of CSF decay as if its T2 were 250 ms, bright at every long
echo time, where the real voxel is grey matter's signal plus a tenth of CSF's.

:class:`Mixture` keeps a phantom's tissue fractions with each tissue's values and
renders them this way (:func:`napari_mr_reparam.simulate.render_slices` takes it where a
phantom has one). The phantom's own maps stay what a single-compartment model should
show for the voxel (:func:`~napari_mr_reparam.phantoms.fractions.maps_from_fractions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: Bounds of a tissue's values after a subject's per-voxel jitter (ms; PD at most 1).
T1_MAX_MS = 5000.0
T2_MAX_MS = 2500.0
#: The values a tissue has, in the order :attr:`Mixture.values` keeps them.
KEYS = ("pd", "t1", "t2", "t2star")
#: Voxels with less tissue than this in all carry no signal (as the maps have it).
MIN_TOTAL = 1e-3
#: How a random subject's voxel of several tissues renders
#: (:class:`~napari_mr_reparam.stream_options.SubjectOptions`): ``signals``, the sum of its
#: tissues' signals; ``times``, from one T1/T2 mixed linearly from theirs (the earlier
#: simulator, which the recipes trained on it keep).
PARTIAL_VOLUME = ("signals", "times")


@dataclass(frozen=True)
class Mixture:
    """A phantom's voxels as tissue fractions, each tissue with its own values.

    Attributes
    ----------
    fractions : dict of str to ndarray
        Tissue name to its fraction volume (z, y, x); a voxel's fractions are normalized
        by their total, and its signal scaled by the total (capped at 1), as the maps are.
    values : dict of str to tuple
        Tissue name to its (PD, T1 ms, T2 ms, T2* ms).
    factors : dict of str to ndarray
        Optional per-voxel factors on each value (``pd``, ``t1``, ``t2``, ``t2star``):
        a subject's smooth value jitter, applied to every tissue in the voxel alike.
    """

    fractions: dict[str, np.ndarray] = field(repr=False)
    values: dict[str, tuple[float, float, float, float]]
    factors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def with_factors(self, factors: dict[str, np.ndarray]) -> Mixture:
        """A copy whose values are scaled per voxel by ``factors`` (see the class)."""
        return replace(self, factors={k: np.asarray(v, np.float32) for k, v in factors.items()})

    def render(self, acq, index=slice(None)) -> np.ndarray:
        """Signal of the voxels ``index`` (axial slices) at acquisition ``acq``, float32."""
        from .. import physics

        fractions = {k: np.asarray(self.fractions[k][index], np.float32) for k in self.values
                     if k in self.fractions}
        if not fractions:
            raise ValueError("a mixture needs the fractions of at least one of its tissues")
        total = sum(fractions.values())
        scale = np.divide(np.clip(total, 0.0, 1.0), total, out=np.zeros_like(total), where=total > MIN_TOTAL)
        factors = {k: np.asarray(v[index], np.float32) for k, v in self.factors.items()}
        out = np.zeros_like(total)
        for name, fraction in fractions.items():
            on = fraction > 0
            if not on.any() or min(self.values[name][:3]) <= 0:  # no tissue here, or no signal
                continue
            pd, t1, t2, t2star = (np.float32(v) * factors[k][on] if k in factors else np.float32(v)
                                  for k, v in zip(KEYS, self.values[name]))
            t2 = np.minimum(t2, T2_MAX_MS)
            signal = physics.render(acq.sequence, np.minimum(pd, 1.0), np.minimum(t1, T1_MAX_MS), t2,
                                    acq.te_ms, acq.tr_ms, ti=acq.ti_ms, flip_deg=acq.flip_deg,
                                    t2star=np.minimum(t2star, t2), ti2=acq.ti2_ms)
            out[on] += fraction[on] * np.asarray(signal, np.float32)
        return (out * scale).astype(np.float32)


def mixture_of(fractions: dict[str, np.ndarray], table) -> Mixture:
    """The :class:`Mixture` of ``fractions`` with the tissues of ``table``
    (a :class:`~napari_mr_reparam.tissues.TissueTable`) that it names."""
    values = {name: tuple(float(getattr(table[name], k)) for k in KEYS)
              for name in fractions if name in table.tissues}
    return Mixture(fractions=fractions, values=values)
