"""Device choice and the CPU allocator setting."""

import platform

import pytest

from napari_mr_reparam.devices import choose_device, describe_device, keep_freed_memory


def test_cpu_is_always_there_and_unknown_devices_are_refused():
    assert choose_device("cpu").type == "cpu"
    assert describe_device(choose_device("cpu")).startswith("CPU")
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_allocator_keeps_freed_memory_under_glibc():
    assert keep_freed_memory() is True
