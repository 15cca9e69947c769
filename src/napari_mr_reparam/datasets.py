"""Training and test data: the paper's protocol as a fixed dataset, and a streaming sampler.

The protocol (Narang et al., BIOENG'22): 200 random (TE, TR) pairs, TR uniform in
1.2-10 s, TE in 20 ms-1 s with short TEs more likely (here: log-uniform), 24 axial
slices per pair at 256x256, and the Default-to-Param input image (TE 50 ms, TR 4.5 s)
for every slice. Two splits over the (pair, slice) samples:

``paper``
    a random 1500 train / 3300 test split, as the paper did;
``slices``
    whole slices held out (a third of the slices for training, the rest for testing),
    so test anatomy is never seen in training: the stricter test.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import DEFAULT_TE_MS, DEFAULT_TR_MS
from .acquisition import TRAINED_RANGE_MS, sample_te_tr  # noqa: F401  (the protocol's draw)
from .phantoms import Phantom
from .simulate import (Acquisition, choose_slices, pad_to_shape, resize_slices, simulate_images,
                       slice_masks)
from .stream_options import StreamOptions

TE_RANGE_MS, TR_RANGE_MS = TRAINED_RANGE_MS["te"], TRAINED_RANGE_MS["tr"]
SPLITS = ("paper", "slices")
PAPER_TRAIN_SAMPLES = 1500
DATASET_FILE = "dataset.npz"
MANIFEST_FILE = "manifest.json"
_ARRAYS = ("images", "default", "masks", "te_ms", "tr_ms", "slice_index",
           "train_paper", "train_slices", "p2p_input_pair")


@dataclass
class ProtocolDataset:
    """Images of one phantom at many (TE, TR) pairs; arrays indexed [pair, slice].

    Attributes
    ----------
    images : uint8 (pairs, slices, h, w)
        Target images on the phantom's grid, each normalized to its own maximum and
        quantized to 8 bits: the simulator's "exported" images. :meth:`images_at`
        resizes them to ``size`` as the network sees them.
    default : uint8 (slices, h, w)
        The same slices at the Default-to-Param input (TE 50 ms, TR 4500 ms).
    masks : bool (slices, h, w)
        Brain masks for the masked metrics.
    te_ms, tr_ms : float (pairs,)
    slice_index : int (slices,)
        Axial slice numbers in the phantom.
    train_paper, train_slices : bool (pairs, slices)
        True where a sample belongs to the training part of that split.
    p2p_input_pair : int (pairs, slices)
        For Param-to-Param, the pair whose image of the same slice is the input.
    """

    images: np.ndarray
    default: np.ndarray
    masks: np.ndarray
    te_ms: np.ndarray
    tr_ms: np.ndarray
    slice_index: np.ndarray
    train_paper: np.ndarray
    train_slices: np.ndarray
    p2p_input_pair: np.ndarray
    phantom: str = ""
    seed: int = 0
    size: int = 256

    def images_at(self, pairs, slices, native: bool = False) -> np.ndarray:
        """Target images [pairs, slices] resized to ``size`` (or, ``native``, on the
        phantom's own grid as exported), float32 in [0, 1]."""
        return _to_network(self.images[pairs, slices], None if native else self.size)

    def default_at(self, slices, native: bool = False) -> np.ndarray:
        """Default-to-Param input images of ``slices``, like :meth:`images_at`."""
        return _to_network(self.default[slices], None if native else self.size)

    def masks_at(self, slices) -> np.ndarray:
        """Brain masks of ``slices`` at ``size``."""
        m = np.asarray(self.masks[slices], np.float32)
        flat = m.reshape(-1, *m.shape[-2:])
        return (resize_slices(flat, self.size) > 0.5).reshape(*m.shape[:-2], self.size, self.size)

    @property
    def n_pairs(self) -> int:
        return self.images.shape[0]

    @property
    def n_slices(self) -> int:
        return self.images.shape[1]

    def samples(self, split: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(pair, slice) indices of the ``train`` or ``test`` part of a split."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        train = getattr(self, f"train_{split}")
        return np.nonzero(train if part == "train" else ~train)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``dataset.npz`` and ``manifest.json``: byte-identical for equal content."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_npz(out / DATASET_FILE, {k: getattr(self, k) for k in _ARRAYS})
        (out / MANIFEST_FILE).write_text(json.dumps(self.manifest(), indent=1) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "ProtocolDataset":
        """Read a dataset written by :meth:`save` (the folder or its ``dataset.npz``)."""
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        npz = folder / DATASET_FILE
        if not npz.is_file():
            raise FileNotFoundError(f"no {DATASET_FILE} in {folder}")
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in _ARRAYS}
        meta = json.loads((folder / MANIFEST_FILE).read_text())
        return cls(**arrays, phantom=meta["phantom"], seed=meta["seed"], size=meta["size"])

    def manifest(self) -> dict:
        """Every sample's pair, slice, TE/TR (ms), splits and P2P input pair."""
        samples = []
        for p in range(self.n_pairs):
            for s in range(self.n_slices):
                q = int(self.p2p_input_pair[p, s])
                samples.append({
                    "pair": p, "slice": s, "phantom_slice": int(self.slice_index[s]),
                    "te_ms": float(self.te_ms[p]), "tr_ms": float(self.tr_ms[p]),
                    "split_paper": "train" if self.train_paper[p, s] else "test",
                    "split_slices": "train" if self.train_slices[p, s] else "test",
                    "p2p_input_pair": q,
                    "p2p_input_te_ms": float(self.te_ms[q]), "p2p_input_tr_ms": float(self.tr_ms[q]),
                })
        return {
            "phantom": self.phantom, "seed": self.seed, "sequence": "spin_echo",
            "default_te_ms": DEFAULT_TE_MS, "default_tr_ms": DEFAULT_TR_MS,
            "size": self.size, "stored_shape": list(self.images.shape[2:]),
            "pairs": self.n_pairs, "slices": self.n_slices,
            "intensity": "uint8, each image normalized to its own maximum; resized "
                         "bilinearly to size x size when read",
            "samples": samples,
        }


def build_protocol_dataset(
    phantom: Phantom, seed: int = 0, pairs: int = 200, slices: int = 24, size: int = 256,
    progress=None,
) -> ProtocolDataset:
    """Simulate the paper's protocol on ``phantom`` (deterministic for a seed).

    ``progress``, if given, is called with the number of pairs just finished.
    """
    rng = np.random.default_rng(seed)
    te, tr = sample_te_tr(rng, pairs)
    idx = choose_slices(phantom, slices)
    images = np.empty((pairs, len(idx), *phantom.shape[1:]), np.uint8)
    for p in range(pairs):
        images[p] = simulate_images(phantom, Acquisition(float(te[p]), float(tr[p])), idx, None)
        if progress is not None:
            progress(1)
    default = simulate_images(phantom, Acquisition(DEFAULT_TE_MS, DEFAULT_TR_MS), idx, None)
    train_paper, train_slices = _splits(rng, pairs, len(idx))
    return ProtocolDataset(
        images=images, default=default, masks=slice_masks(phantom, idx, None),
        te_ms=te.astype(np.float32), tr_ms=tr.astype(np.float32), slice_index=idx,
        train_paper=train_paper, train_slices=train_slices,
        p2p_input_pair=_other_pairs(rng, pairs, len(idx)),
        phantom=phantom.name, seed=seed, size=size,
    )


def _splits(rng, pairs: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    total = pairs * slices
    n_train = round(total * PAPER_TRAIN_SAMPLES / 4800)
    paper = np.zeros(total, bool)
    paper[rng.permutation(total)[:n_train]] = True
    train_slices = np.zeros(slices, bool)
    train_slices[rng.permutation(slices)[: max(1, slices // 3)]] = True
    return paper.reshape(pairs, slices), np.broadcast_to(train_slices, (pairs, slices)).copy()


def _other_pairs(rng, pairs: int, slices: int) -> np.ndarray:
    if pairs < 2:
        return np.zeros((pairs, slices), np.int64)
    offset = rng.integers(1, pairs, size=(pairs, slices))
    return (np.arange(pairs)[:, None] + offset) % pairs


def _to_network(images_u8: np.ndarray, size: int | None) -> np.ndarray:
    images = np.asarray(images_u8, np.float32) / 255.0
    if size is None:
        return images
    flat = images.reshape(-1, *images.shape[-2:])
    out = np.clip(resize_slices(flat, size), 0.0, 1.0)
    return out.reshape(*images.shape[:-2], size, size)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` with fixed zip timestamps, so equal arrays give equal bytes."""
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())
    tmp.replace(path)


class StreamingSampler:
    """Fresh training examples drawn on the fly: (subject, slice, TE, TR) at random.

    Subjects are random deformations of the base phantoms with jittered tissue values
    (:func:`~napari_mr_reparam.phantoms.random_subject.random_subject`); a small pool is
    kept and one member replaced every ``options.subject_every`` examples, because making
    a subject costs about a second. Each example gets its subject's bias field and its
    own noise level; input and target share the bias field (same coil) but not the
    noise. Images are simulated like the protocol's (own maximum, 8 bits, resized).

    Parameters
    ----------
    phantoms : list of Phantom
        Base anatomies.
    task : {"d2p", "p2p"}
        Default-to-Param inputs are at TE 50 ms / TR 4500 ms; Param-to-Param inputs at
        another random pair.
    size : int or None
        Images are resized to ``size`` square, or kept on the subject's own grid (None).
    seed : int
        Seeds the stream's generator (and, with background workers, their subjects').
    randomize : bool
        False draws from the base phantoms as they are (no deformation, jitter, bias or
        noise), which is the fixed-phantom setting of the paper.
    pool : int
        Subjects kept at a time.
    with_maps : bool
        Examples also carry ``maps`` (3, S, S): the slice's PD (times the bias field),
        T1 and T2 (ms), the truth behind its images.
    options : StreamOptions, optional
        How subjects, noise, bias fields and real-scan effects are drawn
        (:class:`~napari_mr_reparam.stream_options.StreamOptions`; its defaults when None).
    with_classes : bool
        Examples also carry ``classes`` (tissues, S, S): each tissue's fraction of the
        slice (:func:`~napari_mr_reparam.acquisition_effects.tissue_classes`); with
        acquisition effects, from subjects drawn from tissue fractions.
    """

    def __init__(self, phantoms: list[Phantom], task: str = "d2p", size: int | None = 256, seed: int = 0,
                 randomize: bool = True, pool: int = 4, with_maps: bool = False,
                 options: StreamOptions | None = None, with_classes: bool = False):
        from .physics import INPUT_SEQUENCES

        self.bases, self.task, self.size, self.with_maps = list(phantoms), task, size, with_maps
        self.with_classes = with_classes
        self.options = options = options or StreamOptions()
        if with_classes and options.effects is None:
            raise ValueError("tissue classes come with acquisition effects only (a recipe's [acquisition])")
        self.input_sequences = options.input_sequences or tuple(INPUT_SEQUENCES)
        self.randomize = randomize
        self.rng = np.random.default_rng(seed)
        self.background = None
        if randomize and options.subject_workers > 0:
            from .subject_source import BackgroundSubjects

            self.background = BackgroundSubjects(self.bases, seed, options, workers=options.subject_workers)
        self.pool = [self._subject() for _ in range(pool if randomize else 0)] or [
            (b, None) for b in self.bases]
        self.drawn = 0

    def _subject(self):
        from .subject_source import draw_subject

        if self.background is not None:
            return self.background.next()
        return draw_subject(self.bases, self.rng, self.options)

    def example(self, targets: int = 1) -> dict:
        """One example: ``input`` (1, S, S) and ``target`` (targets, S, S) float32 in
        [0, 1], with ``input_te``/``input_tr`` and ``target_te``/``target_tr`` in ms
        (scalars for one target, arrays of ``targets`` otherwise)."""
        if self.randomize and self.drawn and self.drawn % self.options.subject_every == 0:
            self.pool[self.rng.integers(len(self.pool))] = self._subject()
        self.drawn += 1
        subject, bias = self.pool[self.rng.integers(len(self.pool))]
        if self.options.effects is not None:
            from .acquisition_effects import realistic_example

            out = realistic_example(subject, bias, self.rng, self.options.effects, self.task,
                                    self.input_sequences, targets, self.with_maps, self.with_classes)
            if self.size is not None:
                out = {k: resize_slices(v, self.size) if np.ndim(v) == 3 else v for k, v in out.items()}
            return out
        first, last = np.flatnonzero(subject.mask().any(axis=(1, 2)))[[0, -1]]
        index = [int(self.rng.integers(first + 0.2 * (last - first), first + 0.85 * (last - first) + 1))]
        te, tr = sample_te_tr(self.rng, targets)
        te_in, tr_in = DEFAULT_TE_MS, DEFAULT_TR_MS
        if self.task == "p2p":
            te_in, tr_in = (float(v[0]) for v in sample_te_tr(self.rng, 1))
        image = self._image(subject, bias, Acquisition(te_in, tr_in), index)
        target = np.concatenate([self._image(subject, bias, Acquisition(float(a), float(b)), index)
                                 for a, b in zip(te, tr)])
        one = targets == 1
        out = {"input": image, "target": target,
               "input_te": np.float32(te_in), "input_tr": np.float32(tr_in),
               "target_te": np.float32(te[0]) if one else te.astype(np.float32),
               "target_tr": np.float32(tr[0]) if one else tr.astype(np.float32)}
        if self.with_maps:
            out["maps"] = self._maps(subject, bias, index)
        return out

    def _maps(self, subject, bias, index) -> np.ndarray:
        """The slice's (PD x bias field, T1, T2) maps, (3, S, S): what its images show."""
        pd = subject.pd[index] * (1.0 if bias is None else bias[index])
        maps = np.concatenate([pd, subject.t1[index], subject.t2[index]]).astype(np.float32)
        return maps if self.size is None else resize_slices(maps, self.size)

    def _image(self, subject, bias, acq, index) -> np.ndarray:
        noise = float(self.rng.uniform(0, self.options.noise_max)) if self.randomize else 0.0
        image = simulate_images(subject, acq, index, self.size, noise_sigma=noise, bias_field=bias,
                                rng=self.rng)
        return image.astype(np.float32) / 255.0

    def batch(self, count: int, targets: int = 1) -> dict[str, np.ndarray]:
        """``count`` examples stacked; with ``size`` None (each subject's own grid), images
        of different grids are zero-padded, centred, to the largest (background is 0)."""
        rows = [self.example(targets) for _ in range(count)]
        return {k: stack_padded([r[k] for r in rows]) for k in rows[0]}


def stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack``, zero-padding the last two axes (centred) to the largest shape."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays)
    shape = (max(a.shape[-2] for a in arrays), max(a.shape[-1] for a in arrays))
    return np.stack([pad_to_shape(a, shape) for a in arrays])
