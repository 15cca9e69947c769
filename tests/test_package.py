"""The package's front door: the names its docstring points to resolve, lazily."""

import subprocess
import sys


def test_every_public_name_resolves_and_importing_the_package_loads_no_torch_or_qt():
    code = ("import sys, napari_mr_reparam as m\n"
            "heavy = [k for k in ('torch', 'napari', 'qtpy') if k in sys.modules]\n"
            "names = [n for n in m.__all__ if getattr(m, n, None) is None]\n"
            "print(heavy, names, sorted(set(m.__all__) - set(dir(m))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] [] []"


def test_the_docstrings_way_to_a_prediction_and_to_joint_maps_runs():
    import numpy as np

    import napari_mr_reparam as m
    from napari_mr_reparam import physics

    pd, t1, t2 = np.full((2, 24, 24), 0.8), np.full((2, 24, 24), 900.0), np.full((2, 24, 24), 90.0)
    pd[:, :, :8], t1[:, :, :8], t2[:, :, :8] = 1.0, 4000.0, 1500.0  # fluid beside tissue
    acqs = [m.get_preset(name).acquisition() for name in ("T1w", "T2w", "PDw")]
    images = [physics.render(a.sequence, pd, t1, t2, a.te_ms, a.tr_ms).astype(np.float32) for a in acqs]
    maps = m.joint_maps(images, acqs)
    flair = m.get_preset("FLAIR").acquisition()
    render = maps.render(flair.te_ms, flair.tr_ms, flair.sequence, ti_ms=flair.ti_ms)
    truth = physics.render(flair.sequence, pd, t1, t2, flair.te_ms, flair.tr_ms, ti=flair.ti_ms)
    assert np.allclose(render, truth, rtol=0.02, atol=0.01)  # fluid near its null: 0.027 against 0.032


def test_a_double_inversion_recovery_from_python_and_a_target_that_is_no_acquisition(tiny_weights):
    import numpy as np
    import pytest

    import napari_mr_reparam as m

    engine = m.Reparameterizer("physics", device="cpu")
    image = (np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32) % 53 + 10) * 10
    dir_preset = m.get_preset("DIR")
    out = engine.predict_volume(image, dir_preset.te, dir_preset.tr, 15, 500, sequence=dir_preset.sequence,
                                ti_ms=dir_preset.ti, ti2_ms=dir_preset.ti2)
    np.testing.assert_array_equal(out, engine.predict(image, dir_preset.acquisition(), m.Acquisition(15, 500)))
    with pytest.raises(TypeError, match=r"^predict takes each target as an Acquisition"):
        engine.predict(image, (100, 3000))


def test_a_ti_given_to_a_spin_echo_is_said_not_dropped(tiny_weights):
    import numpy as np
    import pytest

    import napari_mr_reparam as m

    engine = m.Reparameterizer("physics", device="cpu")
    image = (np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32) % 53 + 10) * 10
    with pytest.raises(ValueError, match=r"^ti_ms is given but sequence 'spin_echo' reads no TI: name the sequence "
                                         r"that does \(sequence='inversion_recovery'\), or leave it out$"):
        engine.predict_volume(image, 120, 9000, 15, 500, ti_ms=2500)  # a FLAIR meant, its sequence forgotten
    with pytest.raises(ValueError, match=r"^input_flip_deg is given but input_sequence 'spin_echo' reads no flip"):
        engine.predict_volume(image, 120, 9000, 15, 500, input_flip_deg=9)
    maps = m.joint_maps([image], [m.Acquisition(15, 500)], engine=engine)
    with pytest.raises(ValueError, match="^flip_deg is given but sequence 'spin_echo' reads no flip angle"):
        maps.render(100, 3000, flip_deg=90)
