"""Keeping the cyclic garbage collector off what lives as long as the process, and its
full collections to moments the server picks."""

from __future__ import annotations

import gc
from typing import Any

#: Seconds between full collections while ``FullCollections`` runs.
FULL_EVERY = 30.0
#: Seconds a due full collection waits for a quiet moment before it runs anyway.
QUIET_WAIT = 1.0
#: A threshold for the oldest generation that CPython never reaches.
_NEVER = 1 << 30


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


class FullCollections:
    """Full collections every ``every`` seconds, at a quiet moment, instead of CPython's.

    CPython starts a full (oldest-generation) collection by itself when enough objects
    have grown old: with thousands of connections that walk takes tens of milliseconds
    (25-46 ms with 5 000 low-latency viewers) in which nothing is served, at whatever
    moment it falls; if a part lands then, every viewer waiting for it gets it that
    much later (one such pause in a 10 s window moved the benchmark's p99 from 70 to
    96 ms). While this runs, CPython's own full collections are off (the younger
    generations are collected as before); one is due every ``every`` seconds and runs
    at the next ``quiet()`` (the low-latency path calls it once a part's answers are
    out, the longest time before the next one), or ``wait`` seconds after it fell due
    if nothing called. Cyclic garbage that reached the oldest generation lives up to
    ``every`` seconds longer."""

    def __init__(
        self,
        clock: Any,
        every: float = FULL_EVERY,
        wait: float = QUIET_WAIT,
    ) -> None:
        self._clock = clock
        self.every = every
        self.wait = wait
        self._saved: tuple[int, ...] | None = None
        self._call: Any = None
        #: whether a full collection waits for a quiet moment
        self.due = False
        #: full collections made
        self.collections = 0

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        young, middle = self._saved[:2]
        gc.set_threshold(young, middle, _NEVER)
        self._call = self._clock.callLater(self.every, self._fall_due)

    def stop(self) -> None:
        self._cancel()
        self.due = False
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def quiet(self) -> None:
        """Nothing is expected for a while: a due collection runs now."""
        if self.due:
            self._collect()

    def _fall_due(self) -> None:
        self.due = True
        self._call = self._clock.callLater(self.wait, self._collect)

    def _collect(self) -> None:
        self._cancel()
        self.due = False
        gc.collect()
        self.collections += 1
        self._call = self._clock.callLater(self.every, self._fall_due)

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
