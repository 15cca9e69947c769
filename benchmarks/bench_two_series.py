"""Joint maps from two real series of one phantom plate: its inversion-recovery set and its
multi-echo train, as `napari-mr-reparam maps IR_FOLDER TRAIN_FOLDER` fits them.

The hazen relaxometry data (``../shared/real_scans/hazen_relaxometry``) image the system
phantom's T1 plate (plate 5) with both series at three sites. The two series are stored at
different receiver gains. Each fit below runs the command line's own path
(`cli_joint.fit_inputs`: the DICOM folders read, the train resampled onto the
inversion-recovery grid by the affines, the joint fit with `--model none`), with
`--scale shared` (one gain for both) and `--scale per-series` (a gain per folder, found by
the fit's misfit; what `auto`, the default, takes for two folders of several images). The
T1 and T2 maps are read at the spheres (median in a 2-pixel disc, centres placed as
`bench_real_scanners.py` places them, from the inversion-recovery images) and compared with
the plate's reference at the scanner's field, for the spheres whose reference lies within
the TIs (T1) or the train's TEs from echo 2 (T2). Each series alone gives the reference
row. About 3 minutes on 2 CPU cores.

    python benchmarks/bench_two_series.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_scanners import DEFAULT_DATA, load, reference, sphere_centres, sphere_values  # noqa: E402

SITES = ("site3_ge", "site4_philips", "site5_philips_3T")


def fit(folders, scale: str):
    """The command line's joint maps of ``folders`` with ``--scale scale``, no network."""
    from napari_mr_reparam.cli import build_parser
    from napari_mr_reparam.cli_joint import fit_inputs

    args = build_parser().parse_args(["maps", *map(str, folders), "-o", "unused", "--model", "none",
                                      "--scale", scale, "-q"])
    return fit_inputs(args.input, args, model="none")[2]


def site_rows(data: Path, site: str, params) -> list[tuple]:
    ir, train = data / "T1" / site / "plate5", data / "T2" / site / "plate5"
    images, acqs, field, spacing, _ = load(ir)
    centres, factor = sphere_centres(images, spacing, data / "templates" / "Plate5_T1_signed",
                                     params["plate5"]["sphere_centres_row_col"])
    tes = [a.te for a in load(train)[1]]
    tis = [a.ti for a in acqs]
    ref = {k: np.asarray(params["plate5"][k]["relax_times"][field], float) for k in ("t1", "t2")}
    measurable = {"t1": (ref["t1"] >= min(tis)) & (ref["t1"] <= max(tis)),
                  "t2": (ref["t2"] >= sorted(tes)[1]) & (ref["t2"] <= max(tes))}
    fits = {"alone": (fit([ir], "shared"), fit([train], "shared")),
            "shared": (fit([ir, train], "shared"),) * 2, "per-series": (fit([ir, train], "per-series"),) * 2}
    rows = []
    for name, (for_t1, for_t2) in fits.items():
        cells = []
        for key, maps in (("t1", for_t1), ("t2", for_t2)):
            values = sphere_values(getattr(maps, key)[0] if getattr(maps, key).ndim == 3 else getattr(maps, key),
                                   centres, factor)
            error = np.abs(values / ref[key] - 1)[measurable[key]]
            cells.append(f"{100 * np.median(error):.1f} % ({100 * error.max():.1f} %)")
        gain = f"{for_t1.scales[-1]:.3g}" if name != "alone" else "-"
        rows.append((f"{site} ({field})", name, *cells, gain,
                     f"{int(measurable['t1'].sum())} / {int(measurable['t2'].sum())}"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sites", nargs="*", default=list(SITES))
    args = parser.parse_args(argv)
    if not (args.data / "relaxometry_params.py").is_file():
        print(f"error: no relaxometry data at {args.data}", file=sys.stderr)
        return 2
    params = reference(args.data)
    print("| site | gains | T1 median error (worst) | T2 median error (worst) | train's gain "
          "| spheres measurable (T1 / T2) |")
    print("|---|---|---|---|---|---|")
    for site in args.sites:
        for row in site_rows(args.data, site, params):
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
