"""Keeping the cyclic garbage collector off what lives as long as the process."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything alive now out of the cyclic collector's reach (call once started).

    The interpreter, Twisted and our modules are ~70 000 tracked objects that live as
    long as the process; every full collection would walk them all again (~20 ms, more
    with cold caches) in the middle of serving: the ingest benchmark's CPU per Mbit/s
    fell by about a third, and stopped jumping between runs, once they were parked with
    ``gc.freeze``. Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()
