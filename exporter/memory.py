"""Keep the C heap from holding on to what a large scrape freed (glibc only; a no-op elsewhere).

glibc serves blocks of 128 KiB and more from their own mappings, returned to the system when freed,
but each such free raises that threshold (up to 32 MiB). After the first scrape of 100,000 keys the
key lists, replies and response buffers came from the heap instead, where freed space stays resident
and fragments: the peak grew by 1-2 MiB per scrape. ``fix_mmap_threshold`` pins the threshold at
start; ``release_free_memory`` hands the heap's free pages back after a scrape, so the next scrape
starts from the idle size (benchmarks/README.md has the numbers).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""mallopt parameter (malloc.h); setting it also turns off glibc's dynamic adjustment."""
MMAP_THRESHOLD = 128 * 1024
"""glibc's own default: only the adjustment is turned off."""


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter already uses
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def fix_mmap_threshold() -> None:
    if _LIBC is not None and not _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; memory after large scrapes may stay higher")


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (a few milliseconds at 100,000 keys)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
