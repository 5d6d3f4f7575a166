"""The stats samplers on a fake clock: sample every minute, keep 24 h, survive their own errors."""

from __future__ import annotations

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.core.viewers import Viewers
from owncast.stats.samplers import KEEP_SECONDS, HardwareSampler, ViewerSampler, read_hardware
from tests.fakes import inline
from tests.helpers import make_store, result_of


class SamplerTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = make_store()

    def test_hardware_sampled_each_minute_and_pruned(self):
        result_of(self.store.add_sample("cpu", self.clock.seconds() - KEEP_SECONDS - 10, 1))
        sampler = HardwareSampler(self.store, self.clock, inline, "/")
        sampler.startService()
        self.addCleanup(sampler.stopService)
        self.clock.advance(60)
        for kind in ("cpu", "memory", "disk"):
            rows = result_of(self.store.list_samples(kind, 0))
            self.assertEqual(len(rows), 2, kind)
            self.assertTrue(all(0 <= value <= 100 for _, value in rows))

    def test_reading_is_percentages(self):
        values = read_hardware("/")
        self.assertEqual(set(values), {"cpu", "memory", "disk"})
        self.assertTrue(all(0 <= v <= 100 for v in values.values()))

    def test_viewer_count_sampled(self):
        viewers = Viewers(self.clock.seconds)
        viewers.stream_started()
        viewers.seen("a")
        viewers.seen("b")
        sampler = ViewerSampler(self.store, self.clock, viewers)
        sampler.startService()
        self.addCleanup(sampler.stopService)
        viewers.stream_stopped()
        self.clock.advance(60)
        self.assertEqual([v for _, v in result_of(self.store.list_samples("viewers", 0))], [2, 0])

    def test_a_failing_sample_does_not_stop_the_loop(self):
        calls = []

        class Broken:
            def add_sample(self, *args):
                calls.append(args)
                return fail(RuntimeError("disk full"))

        viewers = Viewers(self.clock.seconds)
        sampler = ViewerSampler(Broken(), self.clock, viewers)
        sampler.startService()
        self.addCleanup(sampler.stopService)
        self.clock.advance(60)
        self.clock.advance(60)
        self.assertEqual(len(calls), 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)


class ViewerTests(unittest.TestCase):
    def test_counts_distinct_recent_clients_and_peaks(self):
        clock = Clock()
        viewers = Viewers(clock.seconds, overall_max=5)
        viewers.seen("ignored while offline")
        self.assertEqual(viewers.count(), 0)
        viewers.stream_started()
        for key in ("a", "b", "a"):
            viewers.seen(key)
        self.assertEqual(viewers.count(), 2)
        clock.advance(61)
        viewers.seen("c")
        self.assertEqual(viewers.count(), 1)
        self.assertEqual((viewers.session_max, viewers.overall_max), (2, 5))
        viewers.stream_stopped()
        self.assertEqual(viewers.count(), 0)

    def test_a_client_seen_again_outlives_one_seen_once(self):
        clock = Clock()
        viewers = Viewers(clock.seconds)
        viewers.stream_started()
        viewers.seen("a")
        clock.advance(30)
        viewers.seen("b")
        clock.advance(20)
        viewers.seen("a")  # a is now the most recent
        clock.advance(20)  # b last seen 40 s ago, a 20 s ago
        self.assertEqual(viewers.count(), 2)
        clock.advance(25)  # b 65 s, a 45 s
        self.assertEqual(viewers.count(), 1)
        clock.advance(20)  # a 65 s
        self.assertEqual(viewers.count(), 0)
        self.assertEqual(viewers.session_max, 2)
