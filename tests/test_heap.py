"""``settle_heap``: start-up objects leave the collector's reach, later garbage does not.
Run in a child interpreter, so the test process's own heap is left alone."""

from __future__ import annotations

import subprocess
import sys

from twisted.trial import unittest

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
