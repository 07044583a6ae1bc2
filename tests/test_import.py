"""Nothing happens at import: ``import minires`` loads no plotting library and leaves the process's
malloc settings alone; tuning the allocator is an explicit call. Each check runs in a fresh
interpreter, since this test process has long imported (and tuned) everything."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, **env) -> None:
    environment = {**os.environ, "PYTHONPATH": ROOT, **env}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_import_minires_loads_neither_matplotlib_nor_the_allocator_tuning():
    run_python("""
        import sys
        import minires
        assert "minires.host_allocator" not in sys.modules
        assert "minires.devices.host_allocator" not in sys.modules
        import minires.nn, minires.models, minires.diagnostics, minires.train
        import minires.experiments, minires.studies, minires.cli   # plots load only to draw
        loaded = [m for m in ("matplotlib", "minires.diagnostics.plots") if m in sys.modules]
        assert not loaded, f"imported at import time: {loaded}"
        from minires.host_allocator import host_allocator_tuned
        assert not host_allocator_tuned()
    """)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt and mallinfo2 are glibc's")
def test_malloc_is_tuned_by_the_explicit_call_only():
    # glibc serves a 64 MiB block with mmap (the count of mmap-ed blocks, mallinfo2().hblks,
    # goes up) unless M_MMAP_MAX is 0, which is what tune_host_allocator sets
    run_python("""
        import ctypes, ctypes.util
        import numpy

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "mallinfo2"):
            raise SystemExit(0)                          # glibc < 2.33: nothing to observe
        libc.mallinfo2.restype = MallInfo2

        def mmapped_blocks_for_a_large_array():
            before = libc.mallinfo2().hblks
            block = numpy.ones(64 * 2**20, dtype=numpy.uint8)
            return libc.mallinfo2().hblks - before

        import minires
        import minires.train
        assert mmapped_blocks_for_a_large_array() == 1, "malloc settings changed by import"
        from minires.backend import tune_host_allocator
        assert tune_host_allocator() is True
        assert mmapped_blocks_for_a_large_array() == 0, "tune_host_allocator had no effect"
    """, MINIRES_TUNE_MALLOC="1")
