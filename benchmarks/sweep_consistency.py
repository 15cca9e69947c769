"""The physics model's data-consistency weight against quality, on and off its training head.

    python benchmarks/sweep_consistency.py [--model physics] [--weights-list 0 0.5 0.75 1]
                                           [--phantoms mrilab:PATH mni152] [--limit 600]
                                           [--marker consistency-table]

Scores the model (bundled name or weights file) on the first ``--limit`` test images of
each phantom's paper protocol, for both tasks and every data-consistency weight, and
writes a PSNR table between ``<!-- MARKER:begin -->`` and ``<!-- MARKER:end -->`` in
training/RESULTS.md (``--marker ''`` prints it only).
"""

from __future__ import annotations

import argparse
from make_results import DEFAULT_PHANTOM, add_output_arguments, publish


def sweep(model: str, weights: list[float], phantoms: list[str], limit: int, device: str) -> str:
    from napari_mr_reparam.inference import InferenceOptions, Reparameterizer
    from napari_mr_reparam.training.evaluate import evaluate

    engine = Reparameterizer(model, device=device, batch_size=16)  # a name or a weights file
    names = [p.split(":")[0] for p in phantoms]
    header = ("| consistency | " + " | ".join(f"{n} {t} (dB)" for n in names for t in ("d2p", "p2p"))
              + " |\n|---|" + "---|" * (2 * len(names)))
    rows = []
    for weight in weights:
        options = InferenceOptions(consistency=weight)
        cells = [f"{evaluate(engine, task, phantom, limit=limit, options=options)['psnr_mean']:.2f}"
                 for phantom in phantoms for task in ("d2p", "p2p")]
        rows.append(f"| {weight:g} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return "\n".join([header, *rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics")
    parser.add_argument("--weights-list", nargs="+", type=float, default=[0.0, 0.5, 0.75, 1.0])
    parser.add_argument("--phantoms", nargs="+", default=[DEFAULT_PHANTOM, "mni152"])
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--device", default="cpu")
    add_output_arguments(parser, "consistency-table")
    args = parser.parse_args(argv)
    from napari_mr_reparam.devices import keep_freed_memory

    keep_freed_memory()
    table = sweep(args.model, args.weights_list, args.phantoms, args.limit, args.device)
    publish(args, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
