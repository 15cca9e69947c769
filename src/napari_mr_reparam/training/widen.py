"""A physics network twice as wide that computes what a trained narrower one computes.

Going on training from trained weights with more capacity (the widening of Chen, Goodfellow
and Shlens, "Net2Net", ICLR 2016): every channel of every block is split in two. A block's
output channels are copied; the next layer takes each copy with half the old weight (plus
and minus a small random part, so that the copies can learn apart while their sum, and so
the function, stays the same). The FiLM network's scale and shift of a channel are copied
with it. Group norm sees the same statistics: its groups hold eight channels, and a widened
group holds one copy of one old group (old group g becomes new groups 2g and 2g + 1).

    python -m napari_mr_reparam.training.widen physics runs/widened/physics_x2.pt

writes a checkpoint that ``napari-mr-reparam-train physics --set width=W --set
init=runs/widened/physics_x2.pt`` starts from (W twice the weights' width).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: Channels per group-norm group (:class:`~napari_mr_reparam.models.physics_net.FiLMBlock`).
GROUP = 8
#: Spread of the random part that lets the two copies of a channel learn apart, relative
#: to the RMS of the weights it is added to.
SPLIT_NOISE = 1e-2


def copy_index(channels: int):
    """For the ``2 * channels`` widened channels, the old channel each copies (old group g's
    eight channels stand at new groups 2g and 2g + 1), and which copy it is (+1 the first,
    -1 the second)."""
    import torch

    new = torch.arange(2 * channels)
    return (new // (2 * GROUP)) * GROUP + new % GROUP, torch.where(new % (2 * GROUP) < GROUP, 1.0, -1.0)


def _split_inputs(weight, index, sign, rng, noise: float):
    """A conv weight (out, in, ...) taking the widened inputs: each old input twice, halved,
    the first copy plus and the second minus one small random part (the two copies carry
    the same value, so the sum, and the function, are unchanged)."""
    import torch

    scale = float(weight.pow(2).mean().sqrt()) * noise
    jitter = torch.from_numpy(rng.normal(0.0, scale, tuple(weight.shape)).astype(np.float32))
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    return weight[:, index] / 2 + sign.reshape(shape) * jitter[:, index]


def widened_state(state: dict, depth: int = 4, noise: float = SPLIT_NOISE, seed: int = 0) -> dict:
    """The state of a :class:`~napari_mr_reparam.models.physics_net.PhysicsNet` of twice the
    base width that computes what ``state`` (one of ``depth`` levels) computes."""
    import torch

    rng = np.random.default_rng(seed)
    chans = [int(state[f"down.{i}.conv1.weight"].shape[0]) for i in range(depth)]
    out = {}

    def block(prefix: str, cout: int, inputs):
        """``inputs``: the widened input channels as (old index, copy sign), or None (the image)."""
        index, sign = copy_index(cout)
        w = state[f"{prefix}.conv1.weight"][index]
        out[f"{prefix}.conv1.weight"] = w if inputs is None else _split_inputs(w, *inputs, rng, noise)
        out[f"{prefix}.conv1.bias"] = state[f"{prefix}.conv1.bias"][index]
        out[f"{prefix}.conv2.weight"] = _split_inputs(state[f"{prefix}.conv2.weight"][index], index, sign, rng, noise)
        out[f"{prefix}.conv2.bias"] = state[f"{prefix}.conv2.bias"][index]
        for norm in ("norm1", "norm2"):
            for part in ("weight", "bias"):
                out[f"{prefix}.{norm}.{part}"] = state[f"{prefix}.{norm}.{part}"][index]

    for i in range(depth):
        block(f"down.{i}", chans[i], None if i == 0 else copy_index(chans[i - 1]))
    for j in range(depth - 1):
        level = depth - 2 - j
        deeper, skip = chans[level + 1], chans[level]
        (di, ds), (si, ss) = copy_index(deeper), copy_index(skip)
        block(f"up.{j}", chans[level], (torch.cat([di, deeper + si]), torch.cat([ds, ss])))  # deeper, then skip
    out["head.weight"] = _split_inputs(state["head.weight"], *copy_index(chans[0]), rng, noise)
    out["head.bias"] = state["head.bias"].clone()
    # FiLM: each block's gamma and beta rows, per widened channel
    sizes = chans + [chans[depth - 2 - j] for j in range(depth - 1)]
    rows, start = [], 0
    for size in sizes:
        index, _ = copy_index(size)
        rows += [start + index, start + size + index]
        start += 2 * size
    rows = torch.cat(rows)
    out["film.0.weight"], out["film.0.bias"] = state["film.0.weight"].clone(), state["film.0.bias"].clone()
    out["film.2.weight"], out["film.2.bias"] = state["film.2.weight"][rows], state["film.2.bias"][rows]
    missing = set(state) - set(out)
    if missing:
        raise ValueError(f"the weights hold tensors this widening does not know: {sorted(missing)[:3]}")
    return out


def main(argv=None) -> int:
    import torch

    from ..weights import load_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a bundled weight set's name, or a .safetensors / .pt file")
    parser.add_argument("out", help="the widened checkpoint (.pt) to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        parser.error(f"{out} exists: name another file")
    state, card = load_weights(args.weights)
    wide = widened_state(state, int(card.get("depth", 4)), seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": wide}, out)
    print(f"wrote {out}: width {2 * float(card.get('width', 0.125)):g} ({sum(v.numel() for v in wide.values()):,} "
          f"parameters, from {sum(v.numel() for v in state.values()):,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
