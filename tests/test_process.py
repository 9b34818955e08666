"""The process-wide settings made at import: OpenBLAS/OpenMP waiting and glibc's reuse of freed memory."""
import os
import sys

import pytest

from minicnn import _process


def test_thread_settings_are_made_unless_the_user_set_them():
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] and os.environ["OMP_WAIT_POLICY"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_settings_respect_the_users_own(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert _process.keep_freed_memory() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert _process.keep_freed_memory() is False
