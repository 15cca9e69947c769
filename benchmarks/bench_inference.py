"""Inference speed: per model, one-slice latency and whole-volume throughput; and the
paper architecture at full width with naive versus exact-efficient parameter injection.

    python benchmarks/bench_inference.py [--device cpu|cuda] [--models d2p p2p physics]
                                         [--slices 24 181] [--full-width-slices 8]
                                         [--input-presets T1w MPRAGE FLAIR]

Prints Markdown tables. Timings are medians of repeated runs after a warm-up, with
``torch.inference_mode``; the volume figures include normalization and resizing. On CPU
the peak-memory column is the process's peak resident set size; on CUDA it is torch's
peak allocated memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_models(models, device_name: str, slice_counts, repeats: int) -> list[str]:
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.inference import Reparameterizer

    rng = np.random.default_rng(0)
    rows = []
    for name in models:
        try:
            engine = Reparameterizer(name, device=device_name, batch_size=16)
        except ValueError as exc:
            rows.append(f"| {name} | - | - | - | not available: {exc} |")
            continue
        one = rng.uniform(0, 1000, (1, 256, 256)).astype(np.float32)
        latency = _median_time(lambda: engine.predict_volume(one, 100, 3000, 50, 4500), repeats)
        cells = [f"{latency * 1000:.0f}"]
        for n in slice_counts:
            vol = rng.uniform(0, 1000, (n, 256, 256)).astype(np.float32)
            t = _median_time(lambda: engine.predict_volume(vol, 100, 3000, 50, 4500), max(1, repeats // 2))
            cells.append(f"{t:.2f} s ({n / t:.0f} slices/s)")
        if engine.renders_from_maps:
            vol = rng.uniform(0, 1000, (max(slice_counts), 256, 256)).astype(np.float32)
            maps = engine.compute_maps(vol)
            rerender = _median_time(lambda: engine.render(maps, Acquisition(80, 3000)), repeats)
            cells.append(f"re-render {max(slice_counts)} slices: {rerender * 1000:.0f} ms")
        else:
            cells.append("")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | peak {_peak_mb(engine.device):.0f} MB |")
    return rows


def bench_injection(device_name: str, slices: int, repeats: int) -> list[str]:
    import torch

    from napari_mr_reparam.devices import choose_device
    from napari_mr_reparam.models import ReparamNet

    device = choose_device(device_name)
    torch.manual_seed(0)
    x = torch.rand(slices, 1, 256, 256, device=device) * 2 - 1
    te = torch.full((slices,), 100.0, device=device)
    tr = torch.full((slices,), 3000.0, device=device)
    outputs, rows, base = {}, [], None
    for injection in ("naive", "efficient"):
        net = ReparamNet("d2p", width=1.0, injection=injection).to(device).eval()
        if injection == "efficient":
            net.load_state_dict(outputs["state"])
        else:
            outputs["state"] = net.state_dict()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def run():
            with torch.inference_mode():
                out = net(x, te, tr)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return out

        t = _median_time(run, repeats)
        outputs[injection] = run()
        base = base or t
        rows.append(f"| {injection} | {slices} | {t:.2f} s | {slices / t:.1f} | {base / t:.2f}x | "
                    f"{_peak_mb(device):.0f} MB |")
    diff = (outputs["naive"] - outputs["efficient"]).abs().max().item()
    rows.append(f"| max abs difference | | {diff:.2e} | | | |")
    return rows


def bench_input_maps(presets, device_name: str, slices: int, repeats: int) -> list[str]:
    """The physics model's maps of a volume read as each input preset's acquisition (its
    data-consistency step differs by sequence)."""
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.presets import get_input_preset

    engine = Reparameterizer("physics", device=device_name, batch_size=16)
    vol = np.random.default_rng(0).uniform(0, 1000, (slices, 256, 256)).astype(np.float32)
    rows = []
    for name in presets:
        acq = get_input_preset(name).acquisition()
        t = _median_time(lambda: engine.compute_maps(vol, acq), repeats)
        rows.append(f"| {get_input_preset(name).describe()} | {slices} | {t:.2f} s |")
    return rows


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["d2p", "p2p", "physics"])
    parser.add_argument("--slices", nargs="+", type=int, default=[24, 181])
    parser.add_argument("--full-width-slices", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--input-presets", nargs="*", default=[],
                        help="also time the physics model's maps with these input presets (largest --slices)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}\n")
    print("| model | one slice (ms) | " + " | ".join(f"{n} slices" for n in args.slices) + " | maps | memory |")
    print("|---|---|" + "---|" * len(args.slices) + "---|---|")
    for row in bench_models(args.models, args.device, args.slices, args.repeats):
        print(row)
    print("\nFull-width paper architecture (68.6 M parameters), d2p, batch of "
          f"{args.full_width_slices} slices:\n")
    print("| injection | slices | time | slices/s | speed-up | peak memory |")
    print("|---|---|---|---|---|---|")
    for row in bench_injection(args.device, args.full_width_slices, max(1, args.repeats // 2)):
        print(row)
    if args.input_presets:
        print("\nThe physics model's maps by input acquisition:\n")
        print("| input | slices | maps |")
        print("|---|---|---|")
        for row in bench_input_maps(args.input_presets, args.device, max(args.slices), args.repeats):
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
