"""How far could one image take a model that knew the anatomy exactly?

    python benchmarks/bench_value_ceiling.py [--slices 8] [--targets 12] [--tables 20000]
                                             [--nearest 32] [--tuning]
                                             [--anatomy CHECKPOINT [--guided] [--true-values]
                                              [--shading PX] [--blend MODEL]]

On the external benchmark's held-out subjects (:mod:`bench_external`; ``--tuning``: the
training subjects 01-04), every target is rendered from the subject's true classes, slabs
and bias field, with tissue values that do not come from the subject's own table:

- ``training means``: the training tables' mean values (the benchmark's anatomy oracle,
  which reads no input).
- ``values from the input``: the values that the input image itself points to among the
  tissue tables training draws (``--tables`` draws of
  :func:`napari_mr_reparam.phantoms.random_subject.mixed_table` over the training tables
  with the training jitter). The input's value for each class is fitted by least squares
  over each pixel's known class mix (as :mod:`bench_error_sources` does); each drawn table
  renders the input's acquisition, is scaled by the gain that fits those class values
  best, and the ``--nearest`` tables with the least misfit (weighted by each class's
  share of the image) are averaged, each target rendered through them.

Both rows know the anatomy exactly, so what separates them from the physics network's rows
is the anatomy the network reads, and what separates them from 33 dB is what one image
and the training tables tell about the subject's tissue values. No network is run.

``--anatomy`` puts a tissue network's fractions from each input
(:mod:`napari_mr_reparam.models.tissue_net`, stage ``tissue``) in place of the true
anatomy: the class values are then fitted over its fractions, and ``--true-values`` gives
each of its classes the subject's own value instead, so that the anatomy's share of the
error shows. ``--guided`` renders on the network's grid and brings each render to the
input's size with the input as the guide (as the engine does for the physics model);
``--shading`` multiplies each render by the input's smooth shading instead; ``--blend
physics`` averages each render with the physics model's prediction from the same input.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_external as ext  # noqa: E402

SEED = 7


def training_draw() -> tuple[tuple[str, ...], float]:
    """The tissue tables and jitter the bundled ``physics`` model trained on (its card)."""
    from napari_mr_reparam.weights import bundled_card

    config = bundled_card("physics")["config"]
    return tuple(config["tables"]), float(config["tissue_jitter"])


@functools.lru_cache(maxsize=8)
def _drawn_tables(names: tuple[str, ...], count: int, seed: int) -> np.ndarray:
    from napari_mr_reparam.phantoms.random_subject import mixed_table

    tables, jitter = training_draw()
    rng = np.random.default_rng(seed)
    out = np.zeros((3, count, len(names)), np.float32)
    out[1:, :, 0] = 1.0  # background: no signal (PD 0), finite times
    for k in range(count):
        table = mixed_table(tables, rng, jitter)
        for i, name in enumerate(names[1:], start=1):
            tissues = [table[n] for n in ext.ORACLE_TISSUE.get(name, (name,))]
            out[0, k, i] = np.mean([t.pd for t in tissues])
            for row, key in ((1, "t1"), (2, "t2")):
                times = [max(getattr(t, key), 1e-3) for t in tissues]
                out[row, k, i] = float(np.exp(np.mean(np.log(times))))
    out.flags.writeable = False  # shared by every caller of the same draw
    return out


def drawn_tables(names: list[str], count: int, seed: int = SEED) -> np.ndarray:
    """(3, count, classes) PD, T1, T2 of the held-out classes in ``count`` tables drawn as
    training draws them (:func:`training_draw`; classes named as
    :func:`bench_external.training_mean_values` names them; a class of two training
    tissues takes their geometric mean, PD their mean). Drawn once per list of names."""
    return _drawn_tables(tuple(names), int(count), int(seed))


def class_values(image: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each class's value in ``image`` (least squares over the pixels' class mix) and each
    class's share of the image's pixels (background first, value 0)."""
    flat = fractions.reshape(-1, fractions.shape[-1])
    values, *_ = np.linalg.lstsq(flat[:, 1:], image.ravel(), rcond=None)
    share = flat.sum(axis=0)
    return np.concatenate([[0.0], values]), share / share.sum()


def nearest_tables(values: np.ndarray, share: np.ndarray, signals: np.ndarray, nearest: int):
    """Indices and gains of the ``nearest`` tables whose signals (tables, classes) fit the
    class ``values`` best after one gain each (misfit weighted by ``share``)."""
    w = share[None, :]
    gain = (w * values * signals).sum(1) / np.maximum((w * signals**2).sum(1), 1e-12)
    misfit = (w * (values[None] - gain[:, None] * signals) ** 2).sum(1)
    best = np.argsort(misfit)[:nearest]
    return best, gain[best]


def render_values(fractions: np.ndarray, per_class: np.ndarray) -> np.ndarray:
    """Slices of the class mix with each class's signal, each normalized to its maximum."""
    from napari_mr_reparam.simulate import normalize_to_max

    return normalize_to_max((fractions[..., 1:] @ per_class[1:]).astype(np.float32))


def load_tissue_net(path: str):
    """The tissue network of a checkpoint or weight set (its card's ``arch`` ``tissue``)."""
    from napari_mr_reparam.models.tissue_net import TissueNet
    from napari_mr_reparam.weights import load_weights

    state, card = load_weights(path)
    if card.get("arch") != "tissue":
        raise ValueError(f"{path}: not a tissue network (arch {card.get('arch')!r})")
    net = TissueNet.from_card(card)
    net.load_state_dict(state)
    return net.eval()


def network_fractions(net, image01: np.ndarray, inp: ext.Acq) -> tuple[np.ndarray, np.ndarray]:
    """(slices, h, w, classes) fractions the tissue network reads from ``image01``
    (slices, h, w): on the network's grid, and brought back to the image's."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image01, np.float32))[:, None]
    with torch.no_grad():
        coarse = net.fractions(x, inp.te, inp.tr, inp.sequence, inp.ti, inp.flip)
        full = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return coarse.permute(0, 2, 3, 1).numpy(), full.permute(0, 2, 3, 1).numpy()


def shading(image01: np.ndarray, rendered: np.ndarray, sigma_px: float) -> np.ndarray:
    """What the input shows that the render of its own acquisition does not, smoothly:
    the ratio of the two, Gaussian-averaged over the tissue (normalized convolution,
    ``sigma_px``), 1 where there is none. It carries the receive bias, which a render
    from tissue fractions lacks."""
    from scipy import ndimage

    out = np.ones_like(rendered)
    for s in range(rendered.shape[0]):
        weight = (rendered[s] > 0.05).astype(np.float32)
        num = ndimage.gaussian_filter(image01[s] * weight, sigma_px)
        den = ndimage.gaussian_filter(rendered[s] * weight, sigma_px)
        out[s] = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 1.0)
    return out


def true_class_signals(subject: ext.HeldoutSubject, fractions: np.ndarray, target: ext.Acq,
                       names: list[str]) -> np.ndarray:
    """The subject's own signal at ``target`` for each class of ``names`` (the tissue
    network's): the mean over the subject's classes that stand for it (a held-out class
    stands for its first training tissue), weighted by their pixels."""
    signal = np.asarray(ext.signal(target, *subject.values[:, :, None]), np.float64)[:, 0]
    weight = fractions.reshape(-1, fractions.shape[-1]).sum(0)
    total, count = np.zeros(len(names)), np.zeros(len(names))
    for i, name in enumerate(subject.names[1:], start=1):
        k = names.index(ext.ORACLE_TISSUE.get(name, (name,))[0])
        total[k] += signal[i] * weight[i]
        count[k] += weight[i]
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def run(paths, slices: int, n_targets: int, n_tables: int, nearest: int, net=None,
        shade_px: float = 0.0, true_values: bool = False, guided: bool = False, blend=None,
        log=print) -> dict:
    """Tallies of the rows (see the module) per input kind, and the training means. With
    ``net`` (a tissue network), its fractions from each input stand in for the true ones
    (and with ``true_values`` every class takes the subject's own value instead of the
    input's: :func:`true_class_signals`); with ``guided`` its renders are made on its own
    grid and brought to the input's with the input as the guide, as the engine brings the
    physics model's (:class:`napari_mr_reparam.detail.DetailGuide`); with ``shade_px`` > 0
    every render is multiplied by the input's :func:`shading`. With ``blend`` (a
    :class:`bench_external.Model`), each render is averaged with that model's prediction
    from the same input, through the engine."""
    from napari_mr_reparam.detail import DetailGuide
    from napari_mr_reparam.models.tissue_net import CLASSES
    from napari_mr_reparam.simulate import normalize_to_max

    targets = ext.heldout_targets(n_targets)
    tallies: dict[str, ext.Tally] = {}
    for index, path in enumerate(paths):
        subject = ext.heldout_subject(Path(path), index, slices)
        truths = [subject.render(t) for t in targets]
        names = list(CLASSES) if net is not None else subject.names
        tables = drawn_tables(names, n_tables)
        true_fractions = subject.class_fractions()
        if net is None:
            fractions = true_fractions
            means = ext.training_mean_values(subject.names)
            for t, truth in zip(targets, truths):
                pred = render_values(fractions, np.asarray(ext.signal(t, *means), np.float64))
                tallies.setdefault("training means", ext.Tally()).add(ext.score(pred, truth, subject.mask), t)
        log(f"  {subject.name}", flush=True)
        for inp in subject.inputs:
            image = subject.acquire(inp)
            if net is not None:
                coarse, fractions = network_fractions(net, image, inp)
                if guided:
                    guide = DetailGuide(image, coarse.shape[1:3])
            values, share = class_values(image, fractions)
            best, gain = nearest_tables(values, share, np.asarray(ext.signal(inp, *tables), np.float64), nearest)
            shade = 1.0
            if shade_px > 0:
                own = (gain[:, None] * np.asarray(ext.signal(inp, *tables[:, best]), np.float64)).mean(0)
                shade = shading(image, render_values(fractions, own), shade_px)
            other = ext.predict(blend, image, inp, targets) if blend is not None else [None] * len(targets)
            for t, truth, also in zip(targets, truths, other):
                if true_values and net is not None:
                    per_class = true_class_signals(subject, true_fractions, t, names)
                else:
                    per_class = (gain[:, None] * np.asarray(ext.signal(t, *tables[:, best]), np.float64)).mean(0)
                if guided and net is not None:
                    pred = normalize_to_max(guide.upsample(render_values(coarse, per_class)))
                else:
                    pred = render_values(fractions, per_class)
                if shade_px > 0:
                    pred = normalize_to_max(np.clip(pred * shade, 0.0, None).astype(np.float32))
                if also is not None:
                    pred = 0.5 * (pred + np.clip(also, 0.0, 1.0))
                tallies.setdefault(inp.name, ext.Tally()).add(ext.score(pred, truth, subject.mask), t)
    return {k: v.summary() for k, v in tallies.items()}



def table(summaries: dict, anatomy: str = "true anatomy") -> str:
    rows = []
    if "training means" in summaries:
        rows.append({"model": "true anatomy", "what": "none (training means)", "saw": None,
                     "summary": summaries["training means"]})
    label = anatomy if "true values" in anatomy else f"{anatomy}, values from the input"
    rows += ext.input_rows(label, summaries)
    return ext.psnr_table(rows, "input")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ext.add_subject_options(parser)
    parser.add_argument("--tables", type=int, default=20000, help="tissue tables drawn as training draws them")
    parser.add_argument("--nearest", type=int, default=32, help="tables averaged per input")
    parser.add_argument("--anatomy", help="a tissue network (checkpoint or weight set) whose fractions "
                        "from each input replace the true anatomy")
    parser.add_argument("--true-values", action="store_true",
                        help="with --anatomy: every class takes the subject's own value (the anatomy's share of the error)")
    parser.add_argument("--guided", action="store_true",
                        help="with --anatomy: render on the network's grid, then bring to the input's guided by it")
    parser.add_argument("--blend", metavar="MODEL",
                        help="average each render with this model's prediction (e.g. physics)")
    parser.add_argument("--shading", type=float, default=0.0, metavar="PX",
                        help="multiply renders by the input's smooth shading (Gaussian sigma in pixels; 0: off)")
    args = parser.parse_args(argv)
    try:
        net = load_tissue_net(args.anatomy) if args.anatomy else None
    except ValueError as exc:  # WeightsError is one too
        parser.error(str(exc))
    paths, missing = ext.subject_paths(args.tuning)
    if missing:
        print(missing)
        return 0
    if args.true_values and net is None:
        parser.error("--true-values needs --anatomy")
    if args.guided and net is None:
        parser.error("--guided needs --anatomy")
    blend = ext.load_models([args.blend], "cpu", baselines=False)[-1] if args.blend else None
    summaries = run(paths, args.slices, args.targets, args.tables, args.nearest, net, args.shading,
                    args.true_values, args.guided, blend)
    print(f"\n{'training subjects 01-04' if args.tuning else 'held-out subjects'}: "
          f"PSNR (dB), mean over subjects, slices and targets; {args.tables} tables, "
          f"{args.nearest} nearest; shading {args.shading:g} px\n")
    anatomy = f"anatomy from {args.anatomy}" if args.anatomy else "true anatomy"
    if args.true_values:
        anatomy += " (true values)"
    if args.guided:
        anatomy += ", guided"
    if args.blend:
        anatomy += f", averaged with {args.blend}"
    print(table(summaries, anatomy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
