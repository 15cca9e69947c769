"""What the benchmarks share: the default phantom, the results file's tables, unseen
training-like heads, gained inputs, the brain's tissue groups, and held-out heads written
as NIfTI scans on chosen grids.

Each benchmark is a script run from the repository root (``python benchmarks/NAME.py``);
its directory is on ``sys.path`` then, so ``from _common import ...`` finds this file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The MRiLab phantom in the shared data beside the repository (``../shared``).
DEFAULT_PHANTOM = "mrilab:" + str(ROOT.parent / "shared/phantoms/mrilab_brain/mrilab_brain_standard.npz")


def _markers(marker: str) -> tuple[str, str]:
    """The comments a table named ``marker`` sits between in the results file."""
    return f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"


def refuse_existing(parser: argparse.ArgumentParser, path, hint: str = "") -> None:
    """A one-line ``parser.error`` where the output ``path`` exists: never written over unasked."""
    if path and Path(path).exists():
        parser.error(f"{path} exists; not overwriting it{f' ({hint})' if hint else ''}")


def write_table(results: Path, marker: str, table: str) -> None:
    """Replace the text between the marker comments (appending them when absent)."""
    begin, end = _markers(marker)
    text = results.read_text() if results.exists() else ""
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)


def read_table(results: Path, marker: str) -> str | None:
    """The text between the marker comments in ``results`` (None where it has none)."""
    begin, end = _markers(marker)
    text = results.read_text() if results.exists() else ""
    found = re.search(re.escape(begin) + "\n?(.*?)\n?" + re.escape(end), text, flags=re.S)
    return found.group(1) if found else None


def table_header(table: str) -> str:
    """A Markdown table's header: its first two lines (names, then the rule)."""
    return "\n".join(table.strip("\n").splitlines()[:2])


def merged_table(old: str, header: str, rows: list[str], key_cells: int = 3) -> str:
    """The table of ``header`` and ``rows`` merged into the ``old`` table of the same
    header: each old row whose first ``key_cells`` cells (the split, the model, the task)
    a new row has is replaced by that row, every other old row is kept in its place (the
    models not measured this time), and the new rows the old table lacks follow."""
    fresh = {_row_key(row, key_cells): row for row in rows}
    kept = [fresh.pop(_row_key(line, key_cells), line) for line in old.strip("\n").splitlines()[2:]]
    added = [row for row in rows if _row_key(row, key_cells) in fresh]
    return "\n".join([header, *kept, *added])


def _row_key(row: str, key_cells: int) -> tuple:
    return tuple(cell.strip() for cell in row.strip().strip("|").split("|")[:key_cells])


def add_output_arguments(parser: argparse.ArgumentParser, marker: str, ask_to_write: bool = False) -> None:
    """``--marker`` (``''``: print only) and ``--results`` (the file the table goes in);
    with ``ask_to_write``, ``--write`` too: the table is printed unless it is given
    (:func:`publish_rows`)."""
    parser.add_argument("--marker", default=marker, help="table marker in the results file ('' prints only)")
    parser.add_argument("--results", default=str(ROOT / "training" / "RESULTS.md"))
    if ask_to_write:
        parser.add_argument("--write", action="store_true",
                            help="put the table in --results between the --marker comments, keeping the rows "
                                 "there of models this run did not measure (default: print it only)")


def refuse_to_write_over_another_table(parser: argparse.ArgumentParser, args: argparse.Namespace,
                                       header: str) -> None:
    """Before anything is measured: ``--write`` needs a marker, and the table under it (if
    any) must have ``header``'s columns, else a one-line ``parser.error``."""
    if not args.write:
        return
    if not args.marker:
        parser.error("--write needs a --marker: the table in --results to put the rows in")
    old = read_table(Path(args.results), args.marker)
    if old is not None and old.strip() and table_header(old) != table_header(header):
        parser.error(f"the {args.marker} table in {args.results} has other columns than this one; "
                     "name its own --marker")


def publish_rows(args: argparse.Namespace, header: str, rows: list[str]) -> None:
    """Print the table of ``header`` and ``rows``; with ``args.write``, put it between
    ``args.marker``'s comments in ``args.results`` instead, merged with the table there
    (:func:`merged_table`: rows of models not measured in this run are kept)."""
    table = "\n".join([header, *rows])
    if not args.write:
        print(table)
        return
    results = Path(args.results)
    old = read_table(results, args.marker)
    if old is not None and old.strip():
        table = merged_table(old, header, rows)
    write_table(results, args.marker, table)
    print(f"updated {args.results} ({args.marker})")


def publish(args: argparse.Namespace, table: str) -> None:
    """Write ``table`` between ``args.marker``'s comments in ``args.results``, or print it."""
    if not args.marker:
        print(table)
        return
    write_table(Path(args.results), args.marker, table)
    print(f"updated {args.results} ({args.marker})")


def unseen_subjects(config: dict, count: int, seed: int):
    """``count`` heads drawn like the training stream's, from seeds ``seed``, ``seed + 1``...
    (base phantoms in turn)."""
    from napari_mr_reparam.phantoms import load_phantom, random_subject
    from napari_mr_reparam.training.config import config_from_record

    cfg = config_from_record(config)
    subject = cfg.stream_options().subject
    bases = [load_phantom(spec) for spec in cfg.phantoms]
    for i in range(count):
        yield random_subject(bases[(seed + i) % len(bases)], seed + i, subject)


class GainedInputs:
    """``engine`` with every input image multiplied by ``gain`` and clipped at 1.

    The engine scales each slice to its own maximum before the model reads it, so a gain
    below 1 is undone there; above 1, the clipping changes the image the model reads."""

    def __init__(self, engine, gain: float):
        self.engine, self.gain = engine, gain
        self.task, self.info = engine.task, engine.info
        self.renders_from_maps = bool(getattr(engine, "renders_from_maps", False))
        self.native_input = bool(getattr(engine, "native_input", False))

    def resolve(self, options=None):
        return self.engine.resolve(options)

    def predict(self, images, *args, **kwargs):
        gained = np.minimum(np.asarray(images, np.float32) * np.float32(self.gain), 1.0)
        return self.engine.predict(gained, *args, **kwargs)


def tissue_regions(t2: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Brain voxels (``mask``) grouped by true T2 (ms): white matter, grey matter, CSF."""
    return {"all brain": mask, "T2 < 90 ms (WM)": mask & (t2 < 90),
            "T2 90-500 ms (GM)": mask & (t2 >= 90) & (t2 < 500), "T2 >= 500 ms (CSF)": mask & (t2 >= 500)}


#: The brain's tissues, in the order :func:`brain_fractions` returns them.
BRAIN_TISSUES = ("white_matter", "grey_matter", "csf")


def brain_fractions(truth: dict, mask: np.ndarray, table) -> np.ndarray:
    """White matter, grey matter and CSF fractions (3, n) of the brain voxels, solved from
    their true PD, T1 and T2 as linear mixtures of ``table``'s values."""
    values = np.array([[table[n].pd, table[n].t1 / 1000, table[n].t2 / 1000] for n in BRAIN_TISSUES]).T
    voxels = np.stack([truth["pd"][mask], truth["t1"][mask] / 1000, truth["t2"][mask] / 1000])
    return np.linalg.solve(values, voxels)


def psnr_per_slice(pred, truth) -> float:
    """Mean PSNR over the slices of a stack (first axis) whose truth holds signal, each
    slice of both on 0-255 at its own maximum (the paper's protocol); NaN counts as 0."""
    from napari_mr_reparam.metrics import psnr

    scores = []
    for p, t in zip(pred, truth):
        if t.max() <= 0:
            continue
        p = np.clip(np.nan_to_num(p) / max(float(np.nanmax(p)), 1e-12), 0, 1) * 255
        scores.append(psnr(p, t / t.max() * 255))
    return float(np.mean(scores))


# ------------------------------------------------------- held-out heads as NIfTI scans

#: The 1 mm stack's affine (file axes x, y, z = stack axes 2, 1, 0): x to the left, y to the
#: back, z up, as the package's stack lays a head out (:mod:`napari_mr_reparam.orientation`).
FINE = np.diag([-1.0, -1.0, 1.0, 1.0])


def heldout_subjects_and_engine(model: str):
    """The held-out subjects' label maps (``bench_external.subject_paths``) and the network
    a joint-fit benchmark runs (None for ``"none"``: the fit alone); None, after a line that
    says which are missing, where ``../shared/`` lacks a subject."""
    import bench_external as ext

    paths, missing = ext.subject_paths(False)
    if missing:
        print(f"skipped: {missing}")
        return None
    if model == "none":
        return paths, None
    from napari_mr_reparam.inference import Reparameterizer

    return paths, Reparameterizer(model, device="cpu")


def subject_slab(path: Path, index: int, slices: int, motion: np.ndarray | None = None, supersample: int = 1,
                 smooth: bool = False):
    """(name, PD, T1, T2 (stack of ``slices`` 1 mm axial slices), brain mask) of held-out
    subject ``path`` with its drawn tissue table; with ``motion`` (4 x 4, RAS mm), as the
    same grid (:data:`FINE`) sees the head after it moved so (:func:`moved_classes`), on
    ``supersample`` times finer voxels (a render's :func:`block_mean` over them is what a
    scan of 1 mm voxels sees: each voxel the mix of its tissues' signals), their anatomy
    finer than the label map's 1 mm steps with ``smooth``."""
    import bench_external as ext
    from napari_mr_reparam.phantoms.freesurfer import read_labels

    labels, _ = read_labels(path)
    classes, names = ext.class_volume(labels)
    classes = ext._pad_to_matrix(classes, ext.MATRIX)
    values = ext.draw_table(names, np.random.default_rng([ext.HELDOUT_SEED, index]))
    zs = np.flatnonzero(np.isin(labels, ext.CEREBRAL_CORTEX).any(axis=(1, 2)))
    middle = int((zs[0] + zs[-1]) // 2)
    sl = slice(middle - slices // 2, middle - slices // 2 + slices)
    part = classes[sl] if motion is None else moved_classes(classes, sl, motion, supersample, smooth)
    pd, t1, t2 = (values[k][part].astype(np.float32) for k in range(3))
    brain = np.isin(part, range(1, 1 + len(ext.BRAIN_CLASSES)))
    return path.name.split(".")[0], pd, t1, t2, brain


def stack_to_world() -> np.ndarray:
    """The 1 mm stack's voxel (z, y, x) to RAS mm (:data:`FINE` takes file axes x, y, z)."""
    return FINE @ np.eye(4)[[2, 1, 0, 3]]


def moved_classes(classes: np.ndarray, sl: slice, motion: np.ndarray, supersample: int = 1,
                  smooth: bool = False) -> np.ndarray:
    """The slices ``sl`` of a class volume (1 mm stack) after the head moved by ``motion``
    (RAS mm in the slab's own world, :func:`stack_to_world` of its slices, as
    :func:`write` places them: the anatomy at p goes to ``motion @ p``), as the same grid
    samples it then (nearest class: each voxel still one tissue), or ``supersample`` times
    finer voxels of it (``supersample`` sub-voxels along each axis of each 1 mm voxel).

    With ``smooth`` each sub-voxel takes the class whose indicator, smoothed (a Gaussian of
    0.5 mm) and interpolated linearly, is largest there: boundaries that run between the
    label map's 1 mm steps, as anatomy does, rather than along them; a 1 mm voxel of such
    a head holds part of two tissues at an edge whether or not the head moved."""
    from scipy import ndimage

    a = stack_to_world()
    back = np.linalg.inv(a) @ np.linalg.inv(motion) @ a  # a voxel of the moved head -> where it was
    start = np.array([sl.start, 0, 0], float)
    fine = np.eye(4)  # a sub-voxel's index -> its centre in 1 mm voxels
    fine[:3, :3] /= supersample
    fine[:3, 3] = 0.5 / supersample - 0.5
    back = back @ fine
    shape = tuple(supersample * n for n in (sl.stop - sl.start, *classes.shape[1:]))
    if not smooth:
        return ndimage.affine_transform(classes, back[:3, :3], offset=back[:3, 3] + start, output_shape=shape,
                                        order=0, mode="constant", cval=0)
    # the slices a motion of a few degrees can bring into the slab, and those only
    low, high = max(sl.start - 16, 0), min(sl.stop + 16, classes.shape[0])
    source = classes[low:high]
    best = np.full(shape, -1.0, np.float32)
    out = np.zeros(shape, classes.dtype)
    for c in np.unique(source):
        indicator = ndimage.gaussian_filter((source == c).astype(np.float32), 0.5)
        p = ndimage.affine_transform(indicator, back[:3, :3], offset=back[:3, 3] + start - [low, 0, 0],
                                     output_shape=shape, order=1, mode="constant", cval=float(c == 0))
        larger = p > best
        best[larger], out[larger] = p[larger], c
    return out


def use_joint_smoothing(radius: float | None = None, strength: float | None = None) -> None:
    """The joint fit's smoothing of its inputs
    (:func:`napari_mr_reparam.edge_smoothing.smooth_inputs`, by the name the fit calls it in
    :mod:`napari_mr_reparam.joint_fit`) held at ``radius`` (voxels) and ``strength`` (noise
    levels) for the rest of the run; None keeps the package's value (``SMOOTH_RADIUS``
    in-plane, ``SMOOTH_BALL_RADIUS`` across slices; ``SMOOTH_RANGE``)."""
    import functools

    from napari_mr_reparam import edge_smoothing, joint_fit

    own = getattr(use_joint_smoothing, "own", None) or joint_fit.smooth_inputs
    use_joint_smoothing.own = own
    joint_fit.smooth_inputs = functools.partial(
        own, radius=radius,
        strength=edge_smoothing.SMOOTH_RANGE if strength is None else strength)


def render(sequence, pd, t1, t2, te, tr, ti):
    from napari_mr_reparam import physics

    image = np.asarray(physics.render(sequence, pd, t1, t2, te, tr, ti=ti), np.float32)
    return np.abs(image)


def block_mean(stack: np.ndarray, voxel: tuple) -> np.ndarray:
    """The mean over blocks of ``voxel`` (z, y, x) fine voxels (the stack cut to whole blocks)."""
    z, y, x = (s // v for s, v in zip(stack.shape, voxel))
    cut = stack[:z * voxel[0], :y * voxel[1], :x * voxel[2]]
    return cut.reshape(z, voxel[0], y, voxel[1], x, voxel[2]).mean(axis=(1, 3, 5))


def grid_affine(voxel: tuple) -> np.ndarray:
    """The affine of a grid of ``voxel`` (z, y, x) fine voxels whose first block starts at
    the fine grid's first voxel (its centre half a block in)."""
    vz, vy, vx = voxel
    scale = np.array([[vx, 0, 0, (vx - 1) / 2], [0, vy, 0, (vy - 1) / 2], [0, 0, vz, (vz - 1) / 2], [0, 0, 0, 1]])
    return FINE @ scale


def write(folder: Path, name: str, stack: np.ndarray, affine: np.ndarray) -> str:
    import nibabel as nib

    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stack.transpose(2, 1, 0)), affine), path)
    return str(path)


def rician(image: np.ndarray, sd: float, rng) -> np.ndarray:
    noise = rng.normal(0, sd, (2, *image.shape)).astype(np.float32)
    return np.hypot(image + noise[0], noise[1])
