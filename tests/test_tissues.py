import pytest

from napari_mr_reparam.tissues import TABLES, TISSUES, get_table


def test_every_table_has_every_tissue_with_sane_units():
    for table in TABLES.values():
        assert table.source
        assert set(table.tissues) == set(TISSUES)
        for name, t in table.tissues.items():
            assert 0 <= t.pd <= 1
            assert 0 <= t.t2star <= t.t2 <= t.t1 or t.t1 == 0, (table.name, name)
            assert t.t1 <= 5000  # milliseconds, not seconds


def test_table_values_from_sources():
    assert get_table("brainweb_1.5t")["white_matter"].t1 == 500
    assert get_table("brainweb")["csf"].t2 == 329
    assert get_table("mrilab")["csf"].t1 == 4500
    assert get_table("3t")["grey_matter"].t1 > get_table("brainweb_1.5t")["grey_matter"].t1


def test_unknown_table():
    with pytest.raises(ValueError, match="known"):
        get_table("7t")
