"""release_freed_memory: glibc's malloc_trim where there is one, called once per scored batch."""

import ctypes.util
import sys

import pytest

from fgbg_utils.memory import release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None, reason="glibc")
def test_the_heap_is_trimmed_on_linux():
    assert release_freed_memory() is True
