"""Named presets and the new target sequences' signal equations."""

import math
import re

import numpy as np
import pytest

from napari_mr_reparam import physics
from napari_mr_reparam.presets import PRESETS, get_preset


def test_every_preset_renders_and_is_described():
    pd, t1, t2 = np.array([0.7, 0.8, 1.0]), np.array([600.0, 1000.0, 4000.0]), np.array([70.0, 90.0, 2000.0])
    for preset in PRESETS.values():
        preset.check()
        args = preset.render_arguments()
        signal = physics.render(args.pop("sequence"), pd, t1, t2, args.pop("te_ms"), args.pop("tr_ms"),
                                ti=args.pop("ti_ms"), flip_deg=args.pop("flip_deg"), ti2=args.pop("ti2_ms"))
        assert not args  # every keyword JointMaps.render takes is accounted for
        assert np.all(np.isfinite(signal)) and np.all(np.asarray(signal) >= 0)
        assert preset.name in preset.describe() and f"TE {preset.te:g}" in preset.describe()


def test_flair_nulls_csf_and_dir_nulls_csf_and_white_matter():
    flair = get_preset("flair")
    csf, wm = (float(physics.inversion_recovery(pd, t1, t2, flair.te, flair.tr, flair.ti))
               for pd, t1, t2 in ((1.0, 4000.0, 2000.0), (0.7, 600.0, 70.0)))
    assert csf < wm / 3  # CSF dark under fluid attenuation, unlike T2-weighted
    t2w = get_preset("T2w")
    assert physics.spin_echo(1.0, 4000.0, 2000.0, t2w.te, t2w.tr) > 2 * physics.spin_echo(0.7, 600.0, 70.0, t2w.te, t2w.tr)
    # double inversion recovery: the two inversions chosen for two T1s null both
    tr, ti1, ti2 = 11000.0, 3400.0, 400.0
    t1 = np.linspace(100, 5000, 2000)
    signal = physics.double_inversion_recovery(1.0, t1, 100.0, 0.0, tr, ti1, ti2)
    nulls = t1[1:-1][(signal[1:-1] < signal[:-2]) & (signal[1:-1] < signal[2:])]
    assert len(nulls) == 2
    # the preset with 1.5 T tissue values (Haacke's): grey matter left, CSF and white matter dark
    from napari_mr_reparam.tissues import get_table

    table, dir_ = get_table("mrilab"), get_preset("DIR")
    s = {k: float(physics.double_inversion_recovery(table[k].pd, table[k].t1, table[k].t2, dir_.te, dir_.tr,
                                                    dir_.ti, dir_.ti2)) for k in ("csf", "grey_matter", "white_matter")}
    assert s["csf"] < s["grey_matter"] / 4 and s["white_matter"] < s["grey_matter"] / 4


def _brute_force_trains(t1, tr, tis, flips, spacing=7.0, n=176, cycles=30):
    """Bloch recursion, pulse by pulse, over many cycles: the signed centre signals."""
    mz, out = 1.0, []
    for _ in range(cycles):
        mz, t, out = -mz, 0.0, []
        for ti, flip in zip(tis, flips):
            start = ti - (n // 2) * spacing
            mz = 1 - (1 - mz) * math.exp(-(start - t) / t1)
            t = start
            a = math.radians(flip)
            for k in range(n):
                if k == n // 2:
                    out.append(math.sin(a) * mz)
                mz = 1 - (1 - mz * math.cos(a)) * math.exp(-spacing / t1)
                t += spacing
        mz = 1 - (1 - mz) * math.exp(-(tr - t) / t1)
    return out


@pytest.mark.parametrize("t1", [300.0, 1000.0, 2500.0])
def test_mprage_and_mp2rage_match_a_pulse_by_pulse_recursion(t1):
    mp = _brute_force_trains(t1, 2300, [900], [9])[0]
    assert float(physics.mprage(1.0, t1, 1e9, 0.0, 2300, 900, 9)) == pytest.approx(abs(mp), rel=1e-4)
    s1, s2 = _brute_force_trains(t1, 5000, [700, 2500], [4, 5])
    assert float(physics.mp2rage(t1, 5000, 700, 2500, 4, 5)) == pytest.approx(s1 * s2 / (s1**2 + s2**2), abs=1e-5)


def test_preset_overrides_and_bad_values():
    t2w = get_preset("T2w").with_values(te=80)
    assert (t2w.te, t2w.tr) == (80, 4000)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("T3w")
    with pytest.raises(ValueError, match="shorter than TR"):
        get_preset("FLAIR").with_values(ti=10000)
    with pytest.raises(ValueError, match="second inversion"):
        get_preset("DIR").with_values(ti2=5000)
    with pytest.raises(ValueError, match=r"TE 0\.09 looks like seconds.*did you mean 90 ms"):
        get_preset("T2w").with_values(te=0.09)
    with pytest.raises(ValueError, match=r"TI 2\.5 looks like seconds"):
        get_preset("FLAIR").with_values(ti=2.5)
    with pytest.raises(ValueError, match="do not fit"):
        physics.mp2rage(1000.0, 2000, 700, 1000, 4, 5)


def test_input_presets_are_those_of_an_input_sequence_and_give_acquisitions():
    from napari_mr_reparam.acquisition import Acquisition
    from napari_mr_reparam.presets import get_input_preset, input_preset_names

    assert input_preset_names() == ["T1w", "T2w", "PDw", "FLAIR", "STIR", "MPRAGE"]
    assert get_input_preset("mprage") is PRESETS["MPRAGE"]
    assert get_input_preset("mprage").acquisition() == Acquisition(3, 2300, "mprage", 900, 9)
    assert get_preset("DIR").acquisition() == Acquisition(25, 11000, "double_inversion_recovery", 3400, None, 400)
    assert get_preset("FLAIR").acquisition() == Acquisition(120, 9000, "inversion_recovery", 2500)
    with pytest.raises(ValueError, match="DIR .double inversion recovery. is a target only"):
        get_input_preset("dir")
    with pytest.raises(ValueError, match="unknown input preset 'T3w'; input presets: T1w, T2w"):
        get_input_preset("T3w")


@pytest.mark.parametrize("flip", [0, -5, 181, 400, float("nan")])
def test_a_flip_angle_outside_0_to_180_degrees_is_refused_everywhere(flip):
    from napari_mr_reparam.acquisition import Acquisition

    message = r"flip angle must be between 0 and 180 degrees \(more than 0, at most 180\)"
    with pytest.raises(ValueError, match=message):
        Acquisition(5, 30, "gradient_echo", flip_deg=flip)
    with pytest.raises(ValueError, match=message):
        get_preset("MPRAGE").with_values(flip_deg=flip)
    assert Acquisition(5, 30, "gradient_echo", flip_deg=180).flip_deg == 180


@pytest.mark.parametrize("name, values, message", [
    ("T2w", {"ti": 500}, "T2w is spin echo, which has no inversion: TI 500 ms would be unused; leave it out"),
    ("T1w", {"flip_deg": 30}, "T1w is spin echo, which reads no flip angle: flip angle 30 deg would be unused"),
    ("FLAIR", {"flip_deg": 20}, "FLAIR is inversion recovery, which reads no flip angle: flip angle 20 deg"),
    ("FLAIR", {"ti2": 300}, "FLAIR is inversion recovery, which has no second inversion: TI2 300 ms would be"),
])
def test_a_preset_refuses_a_value_its_sequence_does_not_read(name, values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_preset(name).with_values(**values)
    assert get_preset("MPRAGE").with_values(ti=1000, flip_deg=8).flip_deg == 8


def test_a_gradient_echo_preset_refuses_an_inversion_time():
    from napari_mr_reparam.presets import Preset

    with pytest.raises(ValueError, match="gradient echo, which has no inversion: TI 400 ms would be unused"):
        Preset("custom", "gradient_echo", te=5, tr=30, ti=400, flip_deg=20).check()
