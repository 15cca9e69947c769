"""The demo's sample head from one, two and three of its images: what the widget shows.

    python benchmarks/bench_joint_sample.py [--model physics]

The sample head (File > Open Sample) has four images of one head, spin echo at TE/TR
50/4500, 20/600, 20/6000 and 120/6000 ms. Every set of one, two or three of them is given
to :func:`napari_mr_reparam.joint_fit.joint_maps` with the bundled physics engine, as the
widget's "Add another image of this subject" does (one input: the network's maps), and the
maps are rendered at each of the head's images that is not an input, scored as the widget
scores them (:func:`napari_mr_reparam.widget_logic.compare_volumes`: each slice on 0-255 at
its own maximum, volume PSNR the mean over slices). About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="physics")
    args = parser.parse_args(argv)

    from napari_mr_reparam._sample_data import make_sample_all
    from napari_mr_reparam.inference import Reparameterizer
    from napari_mr_reparam.joint_fit import joint_maps
    from napari_mr_reparam.simulate import Acquisition
    from napari_mr_reparam.widget_logic import compare_volumes

    layers = make_sample_all()
    images = [(kw["metadata"]["te_ms"], kw["metadata"]["tr_ms"], np.asarray(data, np.float32))
              for data, kw, _ in layers]
    spacing = layers[0][1]["scale"]  # as the widget passes it (4 mm slices: smoothed in-plane)
    names = [f"{te:g}/{tr:g}" for te, tr, _ in images]
    engine = Reparameterizer(args.model, device="cpu")
    print(f"sample head, {images[0][2].shape[0]} slices, model {args.model}: volume PSNR (dB) at each image "
          "(TE/TR ms) that is not an input")
    print(f"| inputs (TE/TR ms) | {' | '.join(names)} | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for count in (1, 2, 3):
        for chosen in itertools.combinations(range(len(images)), count):
            maps = joint_maps([images[i][2] for i in chosen],
                              [Acquisition(images[i][0], images[i][1]) for i in chosen], engine=engine,
                              spacing=spacing)
            cells, scores = [], []
            for k, (te, tr, truth) in enumerate(images):
                if k in chosen:
                    cells.append("input")
                    continue
                score = compare_volumes(maps.render(te, tr), truth)[1]["volume"]["psnr"]
                scores.append(score)
                cells.append(f"{score:.2f}")
            print(f"| {' + '.join(names[i] for i in chosen)} | {' | '.join(cells)} | {np.mean(scores):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
