"""File types told by suffix, and input paths named short."""

from napari_mr_reparam.file_types import path_names, suffix_of


def test_suffix_counts_nii_gz_as_one():
    assert suffix_of("a/Scan.NII.GZ") == ".nii.gz"
    assert suffix_of("a/scan.mgz") == ".mgz"
    assert suffix_of("a/scan") == ""


def test_input_paths_are_named_from_where_they_part():
    sources = ["data/T1/site4/plate5"] * 3 + ["data/T2/site4/plate5"] * 2
    assert path_names(sources) == {"data/T1/site4/plate5": "T1/site4/plate5",
                                   "data/T2/site4/plate5": "T2/site4/plate5"}
    assert path_names(["/a/t1w.nii", "b/t2w.nii"]) == {"/a/t1w.nii": "t1w.nii", "b/t2w.nii": "t2w.nii"}
    assert path_names(["scans/t1w.nii"]) == {"scans/t1w.nii": "t1w.nii"}
    # relative paths of no folder in common part where they do from the current folder
    assert path_names(["ds/sub-01/t1w.nii", "ds2/sub-01/t1w.nii"]) == {
        "ds/sub-01/t1w.nii": "ds/sub-01/t1w.nii", "ds2/sub-01/t1w.nii": "ds2/sub-01/t1w.nii"}
