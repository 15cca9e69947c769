"""The physics-informed model: quantitative maps from one image, any contrast from the maps.

A small U-Net, conditioned on the input's TE/TR by FiLM (per-channel scale and shift
from a little MLP), maps an input slice to bounded proton-density, T1 and T2 maps.
Any target image is then rendered through the MR signal equation
(:mod:`napari_mr_reparam.physics`): the network runs once per volume, and every new
TE/TR (or TI, flip angle, sequence) is a cheap, differentiable formula. Rendered images
are normalized to their own maximum while training, as the training images are; at
inference to the peak the input calibrates (:mod:`napari_mr_reparam.peaks`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import DEFAULT_TE_MS, DEFAULT_TR_MS, peaks, physics
from ..detail import guided_upsample
from .reparam import from_model_range, to_model_range

#: Bounds of the predicted maps (ms for T1/T2; PD relative).
T1_RANGE_MS = (50.0, 6000.0)
T2_RANGE_MS = (2.0, 3000.0)
#: The data-consistency update's assumptions: the network's typical error in log PD, log T1
#: and log T2 (their prior spread), and the error of an input voxel (8-bit quantization
#: and noise, images normalized to their maximum).
CONSISTENCY_PRIOR_SD = {"pd": 0.03, "t1": 0.08, "t2": 0.08}
CONSISTENCY_NOISE_SD = 0.004
#: The prior spread of log PD where an input of another sequence than spin echo moves PD
#: alone (chosen on training subjects: docs/experiments.md, "Data consistency for
#: inversion-recovery and MPRAGE inputs").
CONSISTENCY_PD_ONLY_SD = 0.06
#: Bound on the log mismatch between input and render that one update takes in.
CONSISTENCY_MAX_LOG_RATIO = math.log(4.0)


#: Conditions of a network that reads inputs of any sequence: log TE, log TR, the
#: sequence one-hot (:data:`~napari_mr_reparam.physics.INPUT_SEQUENCES` order), TI (s) and
#: flip angle (in units of 90 degrees), each 0 where the sequence has none.
SEQUENCE_CONDITIONS = 2 + len(physics.INPUT_SEQUENCES) + 2


def condition_vector(te_ms, tr_ms, sequence=None, ti_ms=None, flip_deg=None) -> torch.Tensor:
    """The FiLM input: log TE and log TR relative to the default acquisition, (B, 2); with
    ``sequence`` (a name, or per image names or indices of
    :data:`~napari_mr_reparam.physics.INPUT_SEQUENCES`), also the sequence one-hot, TI
    and flip angle (:data:`SEQUENCE_CONDITIONS` columns)."""
    te = torch.as_tensor(te_ms, dtype=torch.float32).reshape(-1)
    tr = torch.as_tensor(tr_ms, dtype=torch.float32).reshape(-1)
    times = torch.stack([torch.log(te / DEFAULT_TE_MS), torch.log(tr / DEFAULT_TR_MS)], dim=1)
    if sequence is None:
        return times
    b = times.shape[0]
    device = times.device
    codes = sequence_codes(sequence, b).to(device)
    one_hot = F.one_hot(codes, len(physics.INPUT_SEQUENCES)).float()
    ti = torch.as_tensor(0.0 if ti_ms is None else ti_ms, dtype=torch.float32, device=device).reshape(-1).expand(b)
    flip = torch.as_tensor(0.0 if flip_deg is None else flip_deg, dtype=torch.float32,
                           device=device).reshape(-1).expand(b)
    ti = torch.nan_to_num(ti) / 1000.0
    flip = torch.nan_to_num(flip) / 90.0
    return torch.cat([times, one_hot, ti[:, None], flip[:, None]], dim=1)


def sequence_codes(sequence, count: int) -> torch.Tensor:
    """Indices into :data:`~napari_mr_reparam.physics.INPUT_SEQUENCES` of one sequence
    name (for ``count`` images) or of one per image (names or indices), (count,) long."""
    if isinstance(sequence, str):
        sequence = [sequence]
    if isinstance(sequence, torch.Tensor):
        codes = sequence.reshape(-1).long().cpu()
    else:
        codes = torch.as_tensor([physics.INPUT_SEQUENCES.index(s) if isinstance(s, str) else int(s)
                                 for s in sequence], dtype=torch.long)
    return codes.expand(count) if codes.numel() == 1 else codes


class FiLMBlock(nn.Module):
    """Two 3x3 convolutions with group norm; FiLM modulation before the second activation."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = nn.GroupNorm(max(1, cout // 8), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(max(1, cout // 8), cout)

    def forward(self, x, gamma, beta):
        x = F.silu(self.norm1(self.conv1(x)))
        x = self.norm2(self.conv2(x))
        return F.silu(x * (1 + gamma[..., None, None]) + beta[..., None, None])


class FromCard:
    """``from_card``: the network a weight card describes (base, depth, task, work size,
    and whether it reads images at their own grid: ``native_input``)."""

    #: False: the network reads the 256x256 view every model reads; True: it reads each
    #: image at the grid it was acquired (or exported) at, and renders there.
    native_input = False

    @classmethod
    def from_card(cls, card: dict):
        extra = {"input_sequences": True} if card.get("input_sequences") else {}
        net = cls(base=int(card.get("base", 16)), depth=int(card.get("depth", 4)),
                  task=card.get("task", "p2p"), work_size=int(card.get("work_size", 128)), **extra)
        net.native_input = bool(card.get("native_input", False))
        return net


class FiLMUNet(nn.Module):
    """A U-Net whose every block is FiLM-modulated by a small MLP of a condition vector.

    ``base`` channels at full resolution, doubled at each of ``depth`` levels; average
    pooling down, bilinear up, skip connections by concatenation. The FiLM MLP's last
    layer starts at zero, so training starts from the unconditioned U-Net.
    """

    def __init__(self, cin: int, cout: int, n_cond: int, base: int = 16, depth: int = 4):
        super().__init__()
        self.depth = depth
        chans = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList(FiLMBlock(c_in, c) for c_in, c in zip([cin] + chans[:-1], chans))
        self.up = nn.ModuleList(FiLMBlock(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth - 1)))
        self.head = nn.Conv2d(chans[0], cout, 1)
        self._film_sizes = [c for c in chans] + [chans[i] for i in reversed(range(depth - 1))]
        self.film = nn.Sequential(nn.Linear(n_cond, 64), nn.SiLU(), nn.Linear(64, 2 * sum(self._film_sizes)))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)

    def _films(self, cond):
        """Per-block (gamma, beta) from the condition vector."""
        out = self.film(cond)
        pieces, start = [], 0
        for size in self._film_sizes:
            pieces.append((out[:, start:start + size], out[:, start + size:start + 2 * size]))
            start += 2 * size
        return pieces

    def forward(self, x, cond):
        return self.run(x, cond)

    def run(self, x, cond):
        """The U-Net on ``x`` (B, cin, H, W) under conditions ``cond`` (B, n_cond)."""
        films = self._films(cond)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
            x = block(x, *films[i])
            skips.append(x)
        for j, block in enumerate(self.up):
            skip = skips[-2 - j]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1), *films[self.depth + j])
        return self.head(x)


class PhysicsNet(FromCard, FiLMUNet):
    """U-Net from (image, input TE/TR) to PD, T1 and T2 maps, plus a signal-equation renderer.

    Parameters
    ----------
    base : int
        Channels at full resolution; doubled at every level.
    depth : int
        Number of resolution levels.
    task : {"d2p", "p2p"}
        Default-to-Param always conditions on TE 50 ms / TR 4500 ms.

    Attributes
    ----------
    consistency : float
        Data-consistency weight in [0, 1] applied by :meth:`maps`: 0 keeps the network's
        maps; 1 applies :meth:`consistent_maps`' full update toward reproducing the input
        at its own acquisition; between, a part of it. 0 while training; the inference
        engine passes each request's weight to :meth:`maps` (by default
        :data:`napari_mr_reparam.DEFAULT_CONSISTENCY`) and leaves this alone.
    """

    consistency = 0.0
    #: The engine's capability: maps once, then any acquisition by the signal equation.
    renders_from_maps = True
    #: Average the network's raw maps over the image and its left-right mirror (mirrored
    #: back), at twice the cost: a head is nearly symmetric, so the two readings are two
    #: looks at the same anatomy. Off while training.
    flip_average = False
    #: Normalize renders by the peak the input calibrates (:func:`peaks.calibrated_count`,
    #: kept in the maps as ``peak_count``) rather than by their maximum. Off while training.
    calibrate_peak = True
    #: :meth:`forward` brings renders to the input's size guided by the input
    #: (:func:`napari_mr_reparam.detail.guided_upsample`, as the engine renders with
    #: ``keep_detail``) instead of resizing them; set by the training recipe.
    keep_detail = False

    def __init__(self, base: int = 16, depth: int = 4, task: str = "p2p", work_size: int = 128,
                 input_sequences: bool = False):
        super().__init__(1, 3, SEQUENCE_CONDITIONS if input_sequences else 2, base, depth)
        self.task, self.base, self.work_size = task, base, work_size
        #: Whether the network is conditioned on the input's sequence, TI and flip angle
        #: (:func:`condition_vector`); older networks read spin-echo inputs only.
        self.input_sequences = input_sequences

    def maps(self, image01, input_te_ms=None, input_tr_ms=None, input_sequence=None,
             input_ti_ms=None, input_flip_deg=None, *, consistency: float | None = None,
             flip_average: bool | None = None, calibrate_peak: bool | None = None) -> dict[str, torch.Tensor]:
        """PD (0-1), T1 and T2 (ms) maps, each (B, 1, h, w), from images in [0, 1].

        Images larger than ``work_size`` are area-averaged down to it first (the maps are
        then at ``work_size``; renders are resized back by :meth:`forward`). An input of
        another sequence than spin echo (``input_sequence``, with ``input_ti_ms`` and
        ``input_flip_deg`` as it needs them) is read only by a network conditioned on it.
        The inference options, given with the call, override the network's own settings
        (:attr:`consistency`, :attr:`flip_average`, :attr:`calibrate_peak`) for it alone.
        """
        consistency = self.consistency if consistency is None else float(consistency)
        flip_average = self.flip_average if flip_average is None else bool(flip_average)
        calibrate_peak = self.calibrate_peak if calibrate_peak is None else bool(calibrate_peak)
        b = image01.shape[0]
        image01 = to_work_grid(image01, self.work_size, self.native_input)
        if self.task == "d2p" or input_te_ms is None or input_tr_ms is None:
            input_te_ms, input_tr_ms = [DEFAULT_TE_MS] * b, [DEFAULT_TR_MS] * b
            input_sequence = input_ti_ms = input_flip_deg = None
        spin_echo = input_sequence is None or bool((sequence_codes(input_sequence, b) == 0).all())
        if not self.input_sequences and not spin_echo:
            raise ValueError("this model reads spin-echo inputs only; choose a model trained on "
                             "other input sequences")
        seq = (input_sequence if input_sequence is not None else "spin_echo") if self.input_sequences else None
        cond = condition_vector(input_te_ms, input_tr_ms, seq, input_ti_ms, input_flip_deg)
        cond = cond.to(image01.device).expand(b, cond.shape[1])
        raw = self.run(image01, cond).float()
        if flip_average and not self.training:
            raw = 0.5 * (raw + self.run(image01.flip(-1), cond).float().flip(-1))
        maps = {"pd": torch.sigmoid(raw[:, :1]),
                "t1": _log_bounded(raw[:, 1:2], T1_RANGE_MS),
                "t2": _log_bounded(raw[:, 2:3], T2_RANGE_MS)}
        name = "spin_echo" if spin_echo else physics.INPUT_SEQUENCES[int(sequence_codes(input_sequence, b)[0])]
        if consistency > 0:
            maps = self.consistent_maps(maps, image01, input_te_ms, input_tr_ms, consistency,
                                        name, input_ti_ms, input_flip_deg)
        if calibrate_peak and not self.training:
            rendered = self.render(maps, input_te_ms, input_tr_ms, name, input_ti_ms, input_flip_deg,
                                   normalize=False)
            counts = peaks.calibrated_count(rendered[:, 0], image01[:, 0].float())
            maps["peak_count"] = torch.as_tensor(counts, device=image01.device)
        return maps

    def consistent_maps(self, maps: dict, image01, input_te_ms, input_tr_ms,
                        weight: float | None = None, sequence: str = "spin_echo", input_ti_ms=None,
                        input_flip_deg=None) -> dict:
        """The maps moved toward reproducing the input at its own acquisition.

        One Bayesian (Kalman) update per voxel: the log mismatch between the input and the
        maps' render at the input's acquisition, linearized in log PD, log T1 and log T2,
        is shared among the three by their sensitivities (:func:`log_sensitivities`; spin
        echo: 1, -(TR/T1) E1/(1-E1), TE/T2 with E1 = exp(-TR/T1)) and prior spreads
        (:data:`CONSISTENCY_PRIOR_SD`), against the input voxel's own error
        (:data:`CONSISTENCY_NOISE_SD` over its signal), and scaled by ``weight`` (default
        :attr:`consistency`). So a long-TE input corrects mostly T2, and a dark voxel, which
        says little, is barely corrected. An input of another sequence (inversion recovery,
        MPRAGE, gradient echo) moves PD alone, by PD's share of that update (PD's spread
        :data:`CONSISTENCY_PD_ONLY_SD` there): its T1 and T2
        enter through a stated TI, TR and flip angle that a real scan seldom matches, so
        where the signal hangs on T1 (fluid near a null, or recovering) the mismatch is
        taken for a T1 or protocol error and PD barely moves. A global factor between input
        and render is fitted out first: both are normalized to their maximum.
        """
        te = torch.as_tensor(input_te_ms, dtype=torch.float32, device=image01.device).reshape(-1, 1, 1, 1)
        tr = torch.as_tensor(input_tr_ms, dtype=torch.float32, device=image01.device).reshape(-1, 1, 1, 1)
        acquisition = (te, tr, sequence, input_ti_ms, input_flip_deg)
        image = image01.float()
        rendered = self.render(maps, *acquisition, normalize=False)  # the fit below sets the scale
        fit = (image * rendered).sum(dim=(-2, -1), keepdim=True) / (rendered**2).sum(
            dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        rendered = rendered * fit
        signal = torch.maximum(image, rendered).clamp_min(1e-4)
        mismatch = torch.log((image + 1e-4) / (rendered + 1e-4)).clamp(
            -CONSISTENCY_MAX_LOG_RATIO, CONSISTENCY_MAX_LOG_RATIO)
        slopes = log_sensitivities(self.render, maps, acquisition)
        variances = {k: CONSISTENCY_PRIOR_SD[k] ** 2 for k in slopes}
        if sequence != "spin_echo":
            variances["pd"] = CONSISTENCY_PD_ONLY_SD**2
        total = sum(variances[k] * slopes[k] ** 2 for k in slopes) + (CONSISTENCY_NOISE_SD / signal) ** 2
        step = (self.consistency if weight is None else weight) * mismatch / total
        moved = slopes if sequence == "spin_echo" else ("pd",)
        out = {**maps, **{k: maps[k] * torch.exp(variances[k] * slopes[k] * step) for k in moved}}
        out["t1"] = out["t1"].clamp(*T1_RANGE_MS)
        out["t2"] = out["t2"].clamp(*T2_RANGE_MS)
        return out

    @staticmethod
    def render(maps: dict, te_ms, tr_ms, sequence: str = "spin_echo", ti_ms=None, flip_deg=None,
               normalize: bool = True) -> torch.Tensor:
        """Images at the given acquisitions, normalized by default to their maximum, or
        to the peak of ``maps["peak_count"]`` voxels (:func:`peaks.peak`, clipped at 1)
        when the maps carry one.

        Times are scalars, (B,) tensors (one target per image: output (B, 1, H, W)) or
        (B, K) tensors (K targets per image: output (B, K, H, W)). Gradient echo uses
        the T2 map in place of T2*.
        """
        def per_image(v):
            if v is None:
                return None
            t = torch.as_tensor(v, dtype=maps["t1"].dtype, device=maps["t1"].device)
            if t.ndim == 1:
                return t.reshape(-1, 1, 1, 1)
            return t.reshape(*t.shape, 1, 1) if t.ndim == 2 else t

        signal = physics.render(sequence, maps["pd"], maps["t1"], maps["t2"], per_image(te_ms),
                                per_image(tr_ms), ti=per_image(ti_ms), flip_deg=per_image(flip_deg))
        if not normalize:
            return signal
        count = maps.get("peak_count")
        if count is None:
            return signal / signal.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-8)
        # a peak below the maximum leaves its brightest voxels above 1: clipped, as targets are
        return peaks.normalize(signal, count.reshape(-1, *[1] * (signal.ndim - 3))).clamp_max(1.0)

    def forward(self, image, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None, return_maps=False,
                input_sequence=None, input_ti_ms=None, input_flip_deg=None):
        """The paper models' interface: images in [-1, 1] in and out, at the input's size
        (and, with ``return_maps``, the maps as well, for a training loss on them)."""
        image01 = from_model_range(image)
        maps = self.maps(image01, input_te_ms, input_tr_ms, input_sequence, input_ti_ms, input_flip_deg)
        render = self.render(maps, te_ms, tr_ms)
        if self.keep_detail:
            out = to_model_range(guided_upsample(render, image01.clamp(0.0, 1.0)))
        else:
            out = to_model_range(resize_like(render, image))
        return (out, maps) if return_maps else out


def log_sensitivities(render, maps: dict, acquisition: tuple, step: float = 0.01) -> dict:
    """d log|S| / d log p for p = PD, T1, T2 of ``render(maps, *acquisition)``: PD 1 and T2
    TE/T2 in every sequence (the signal is proportional to PD and to exp(-TE/T2), T2 standing
    for T2* in a gradient echo); T1 in closed form for a spin echo, else by central
    differences of ``step`` in log T1."""
    te, tr, sequence = acquisition[:3]
    slopes = {"pd": torch.ones_like(maps["pd"]), "t2": te / maps["t2"]}
    if sequence == "spin_echo":
        e1 = torch.exp(-tr / maps["t1"])
        return {**slopes, "t1": -(tr / maps["t1"]) * e1 / (1 - e1).clamp_min(1e-6)}

    def log_signal(t1):
        return torch.log(render({**maps, "t1": t1}, *acquisition, normalize=False).abs() + 1e-6)

    slopes["t1"] = (log_signal(maps["t1"] * math.exp(step)) - log_signal(maps["t1"] * math.exp(-step))) / (2 * step)
    return slopes


def work_grid(shape, work_size: int, keep_aspect: bool = False) -> tuple[int, int]:
    """The grid a ``shape`` (h, w) image is worked at: itself when its larger side fits in
    ``work_size``, else ``work_size`` square, or (``keep_aspect``) scaled to fit."""
    h, w = int(shape[0]), int(shape[1])
    if max(h, w) <= work_size:
        return h, w
    if not keep_aspect:
        return work_size, work_size
    f = work_size / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def to_work_grid(images, work_size: int, keep_aspect: bool = False):
    """Area-average (B, C, H, W) images down to :func:`work_grid` (unchanged when they fit)."""
    grid = work_grid(images.shape[-2:], work_size, keep_aspect)
    if tuple(images.shape[-2:]) == grid:
        return images
    return F.interpolate(images, size=grid, mode="area")


def resize_like(images, like):
    """Bilinear resize of (B, K, h, w) renders to ``like``'s height and width."""
    if images.shape[-2:] == like.shape[-2:]:
        return images
    return F.interpolate(images, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _log_bounded(raw, bounds):
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    return torch.exp(lo + (hi - lo) * torch.sigmoid(raw))


def pair_conditions(image, te_ms, tr_ms, input_te_ms, input_tr_ms, task: str):
    """``(K, cond)``: targets per image and the (B*K, 4) condition vectors
    [log input TE, log input TR, log target TE, log target TR] (relative to the default
    acquisition) for target times given as (B,) or (B, K)."""
    b = image.shape[0]
    te = torch.as_tensor(te_ms, dtype=torch.float32, device=image.device).reshape(b, -1)
    tr = torch.as_tensor(tr_ms, dtype=torch.float32, device=image.device).reshape(b, -1)
    k = te.shape[1]
    if task == "d2p" or input_te_ms is None or input_tr_ms is None:
        input_te_ms, input_tr_ms = [DEFAULT_TE_MS] * b, [DEFAULT_TR_MS] * b
    cond_in = condition_vector(input_te_ms, input_tr_ms).to(image.device).expand(b, 2)
    target = condition_vector(te.reshape(-1), tr.reshape(-1)).to(image.device)
    return k, torch.cat([cond_in.repeat_interleave(k, 0), target], 1)


class DirectNet(FromCard, FiLMUNet):
    """The comparison baseline: a conditional U-Net from an image straight to the target.

    The same FiLM U-Net as :class:`PhysicsNet`, conditioned on log input TE/TR *and* log
    target TE/TR, with one output channel (tanh) instead of three maps. It must run once
    per target acquisition; it has no maps and no signal equation.
    """

    def __init__(self, base: int = 16, depth: int = 4, task: str = "p2p", work_size: int = 128):
        super().__init__(1, 1, 4, base, depth)
        self.task, self.base, self.work_size = task, base, work_size

    def forward(self, image, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None):
        """Images in [-1, 1] in and out; targets as (B,) or (B, K) times, like PhysicsNet."""
        b = image.shape[0]
        k, cond = pair_conditions(image, te_ms, tr_ms, input_te_ms, input_tr_ms, self.task)
        x = to_work_grid(image, self.work_size, self.native_input)
        out = torch.tanh(self.run(x.repeat_interleave(k, 0), cond).float()).reshape(b, k, *x.shape[-2:])
        return resize_like(out, image)


class HybridNet(FromCard, nn.Module):
    """The second comparison: the physics render plus a learned, bounded correction.

    :class:`PhysicsNet` gives maps and a rendered target; a small FiLM U-Net, conditioned
    on input and target TE/TR, sees the render and the input and adds a correction of at
    most ``max_correction`` (in the [-1, 1] image range), at the maps' working size. The
    maps are still computed once per input, but the correction runs once per target.
    """

    def __init__(self, base: int = 16, depth: int = 4, task: str = "p2p", work_size: int = 128,
                 max_correction: float = 0.25):
        super().__init__()
        self.task, self.base, self.depth, self.work_size = task, base, depth, work_size
        self.max_correction = max_correction
        self.physics = PhysicsNet(base, depth, task, work_size)
        self.physics.calibrate_peak = False  # the correction learned the maximum's scale
        self.correction = FiLMUNet(2, 1, 4, max(4, base // 2), max(2, depth - 2))
        nn.init.zeros_(self.correction.head.weight)
        nn.init.zeros_(self.correction.head.bias)

    @property
    def native_input(self) -> bool:
        return self.physics.native_input

    @native_input.setter
    def native_input(self, value: bool) -> None:
        self.physics.native_input = bool(value)

    def forward(self, image, te_ms, tr_ms, input_te_ms=None, input_tr_ms=None):
        """Images in [-1, 1] in and out; targets as (B,) or (B, K) times, like PhysicsNet."""
        b = image.shape[0]
        k, cond = pair_conditions(image, te_ms, tr_ms, input_te_ms, input_tr_ms, self.task)
        te = torch.as_tensor(te_ms, dtype=torch.float32, device=image.device).reshape(b, k)
        tr = torch.as_tensor(tr_ms, dtype=torch.float32, device=image.device).reshape(b, k)
        small = to_work_grid(image, self.work_size, self.native_input)  # correct at the maps' size
        rendered = self.physics(small, te, tr, input_te_ms, input_tr_ms)  # (B, K, h, w)
        hw = small.shape[-2:]
        pair = torch.stack([rendered, small.expand(b, k, *hw)], 2).reshape(b * k, 2, *hw)
        delta = torch.tanh(self.correction(pair, cond).float()) * self.max_correction
        return resize_like((rendered + delta.reshape(b, k, *hw)).clamp(-1, 1), image)


#: The physics-family networks by the ``arch`` their weight cards record.
NETWORKS = {"physics": PhysicsNet, "direct": DirectNet, "hybrid": HybridNet}
#: The card ``arch`` of each training ``variant`` of the physics stage.
VARIANT_ARCH = {"maps": "physics", "direct": "direct", "hybrid": "hybrid"}
