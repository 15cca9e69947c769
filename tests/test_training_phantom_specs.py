"""Phantom specs as the training commands read them (training/phantom_specs.py): a file
that is no MRiLab phantom is one line that suggests no unsafe loading (the loader's own,
for every caller), and tissue tables are checked by name."""

import argparse

import pytest


def test_an_mrilab_file_that_is_no_npz_is_one_line_suggesting_no_pickles(tmp_path):
    from napari_mr_reparam.phantoms import load_phantom

    for name, content in (("some.json", b"{}"), ("arrays.npy", b"\x93NUMPY\x01\x00"), ("pickled.npz", b"\x80\x04K\x01.")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=r"not an MRiLab \.npz phantom") as refused:
            load_phantom(f"mrilab:{tmp_path / name}")
        assert "allow_pickle" not in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(FileNotFoundError, match="MRiLab phantom not found"):  # the loader's own message
        load_phantom(f"mrilab:{tmp_path / 'missing.npz'}")


def test_a_tissue_table_option_takes_known_tables_only():
    from napari_mr_reparam.training.phantom_specs import tissue_table

    assert tissue_table("3t") == "3t"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^unknown tissue table 'nope'; known: brainweb_1\.5t, "
                                                         r"mrilab, 3t$"):
        tissue_table("nope")
