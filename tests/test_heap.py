"""``settle_heap``: start-up objects leave the collector's reach, later garbage does not
(in a child interpreter, so the test process's own heap is left alone); and
``FullCollections``: full collections at quiet moments, on a schedule."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.http.health import Readiness
from owncast.runtime.heap import FullCollections
from owncast.runtime.sdnotify import Notifier
from owncast.service import Announcer

CHECK = """
import gc
import twisted.internet.reactor
from owncast.runtime.heap import settle_heap
before = len(gc.get_objects())
settle_heap()
frozen = gc.get_freeze_count()
left = len(gc.get_objects())
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
print(frozen > before // 2, left < 100, gc.collect() >= 2)
"""


class SettleHeapTests(unittest.TestCase):
    def test_startup_objects_are_frozen_and_new_cycles_still_collected(self):
        done = subprocess.run(
            [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split(), ["True", "True", "True"])


class _Node:
    other: Any = None


def _old_garbage() -> weakref.ref:
    """A reference cycle moved to the oldest generation, then dropped: only a full
    collection frees it. A weak reference to one of its objects."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gc.collect(1)  # the survivors of the middle generation go to the oldest
    return weakref.ref(a)


class FullCollectionsTests(unittest.TestCase):
    """``FullCollections`` on a ``task.Clock`` and the process's own collector (put back
    as it was after each test)."""

    def setUp(self) -> None:
        self.threshold = gc.get_threshold()
        self.clock = Clock()
        self.full = FullCollections(self.clock, every=30.0, wait=1.0)
        self.addCleanup(self.full.stop)

    def test_cpythons_own_full_collections_are_off_while_it_runs(self) -> None:
        self.full.start()
        young, middle, oldest = gc.get_threshold()
        self.assertEqual((young, middle), self.threshold[:2])
        self.assertGreater(oldest, 1_000_000)
        gone = _old_garbage()
        for _ in range(20):
            gc.collect(1)  # more middle collections than the usual trigger (10) of a full one
        self.assertIsNotNone(gone())
        self.full.stop()
        self.assertEqual(gc.get_threshold(), self.threshold)

    def test_a_due_collection_waits_for_the_next_quiet_moment(self) -> None:
        self.full.start()
        gone = _old_garbage()
        self.full.quiet()  # not due yet: nothing
        self.assertIsNotNone(gone())
        self.clock.advance(30.0)
        self.assertTrue(self.full.due)
        self.clock.advance(0.5)
        self.assertIsNotNone(gone())
        self.full.quiet()
        self.assertIsNone(gone())
        self.assertEqual((self.full.due, self.full.collections), (False, 1))
        # the next one falls due a whole period later; the wait's timer is gone
        self.clock.advance(29.9)
        self.assertFalse(self.full.due)
        self.assertEqual(self.full.collections, 1)

    def test_without_a_quiet_moment_it_runs_after_the_wait(self) -> None:
        self.full.start()
        gone = _old_garbage()
        self.clock.advance(30.0)
        self.clock.advance(0.9)
        self.assertIsNotNone(gone())
        self.clock.advance(0.1)
        self.assertIsNone(gone())
        self.assertEqual(self.full.collections, 1)
        self.clock.advance(30.0)  # due 30 s after the last one
        self.assertEqual((self.full.due, self.full.collections), (True, 1))
        self.clock.advance(1.0)
        self.assertEqual(self.full.collections, 2)

    def test_stopped_it_collects_nothing_more(self) -> None:
        self.full.start()
        self.full.stop()
        self.clock.advance(100.0)
        self.full.quiet()
        self.assertEqual(self.full.collections, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class AnnouncerTests(unittest.TestCase):
    """The daemon's last child settles the heap and paces full collections while up."""

    def test_collections_are_paced_while_the_daemon_is_up(self) -> None:
        threshold = gc.get_threshold()
        self.addCleanup(gc.unfreeze)  # what ``up`` froze of this test process
        clock = Clock()
        readiness = Readiness(clock, lambda: None, lambda: ())
        full = FullCollections(clock)
        announcer = Announcer(Path(self.mktemp()), readiness, Notifier({}), clock, full)
        announcer.up()
        self.assertTrue(readiness.serving)
        self.assertGreater(gc.get_threshold()[2], 1_000_000)
        clock.advance(full.every)
        clock.advance(full.wait)
        self.assertEqual(full.collections, 1)
        announcer.down()
        self.assertEqual(gc.get_threshold(), threshold)
        self.assertEqual(clock.getDelayedCalls(), [])
