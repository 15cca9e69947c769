"""The command-line runner's one-line messages."""

from napari_mr_reparam.command import input_error


def test_an_input_error_names_the_input_once():
    reason = ValueError("scan.nii.gz: not a readable NIfTI file (truncated)")
    assert input_error("data/scan.nii.gz", reason) == "error: data/scan.nii.gz: not a readable NIfTI file (truncated)"
    assert input_error("data/other.nii.gz", reason) == ("error: data/other.nii.gz: scan.nii.gz: not a readable "
                                                        "NIfTI file (truncated)")
    assert input_error("series_acq2 (TE 20 / TR 2000 ms)", ValueError("series_acq2: no TE"), "series_acq2") == \
        "error: series_acq2 (TE 20 / TR 2000 ms): no TE"
    assert input_error("data/gone.nii", FileNotFoundError("data/gone.nii: no such file or folder")) == \
        "error: data/gone.nii: no such file or folder"
