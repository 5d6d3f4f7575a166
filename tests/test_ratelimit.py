"""The sliding-window limiter (``owncast.core.ratelimit``) on a fake clock: limits per key
and overall, the wait it names, refusals that record nothing, and a bounded memory."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from owncast.core.ratelimit import WindowLimiter


class WindowLimiterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.limiter = WindowLimiter(
            self.clock.seconds, per_key=((1, 30.0), (3, 3600.0)), overall=((5, 3600.0),)
        )

    def test_per_key_short_and_long_windows(self) -> None:
        """One per 30 s and three an hour: the wait is until the event that blocks leaves
        its window; another key is not held up."""
        self.assertEqual(self.limiter.take("a"), 0)
        self.assertEqual(self.limiter.take("a"), 30)
        self.clock.advance(10)
        self.assertEqual(self.limiter.retry_after("a"), 20)
        self.assertEqual(self.limiter.take("b"), 0)
        self.clock.advance(20)
        self.assertEqual(self.limiter.take("a"), 0)
        self.clock.advance(30)
        self.assertEqual(self.limiter.take("a"), 0)  # the third this hour
        self.clock.advance(30)
        # The first of the hour (at t=1000) lets the fourth through at t=4600.
        self.assertEqual(self.limiter.take("a"), 3600 - 90)
        self.clock.advance(3600 - 90)
        self.assertEqual(self.limiter.take("a"), 0)

    def test_overall_limit_holds_across_keys(self) -> None:
        for n in range(5):
            self.assertEqual(self.limiter.take(f"k{n}"), 0)
            self.clock.advance(60)
        self.assertEqual(self.limiter.take("new"), 3600 - 300)
        self.assertEqual(self.limiter.retry_after("k0"), 3600 - 300)
        self.clock.advance(3600 - 300)
        self.assertEqual(self.limiter.take("new"), 0)

    def test_refusals_and_checks_record_nothing(self) -> None:
        self.limiter.take("a")
        for _ in range(100):
            self.assertGreater(self.limiter.take("a"), 0)
            self.limiter.retry_after("b")
        self.clock.advance(30)
        self.assertEqual(self.limiter.take("a"), 0)
        self.assertEqual(self.limiter.take("b"), 0)

    def test_remembers_at_most_max_tracked_keys(self) -> None:
        """Past ``max_tracked`` keys the earliest are forgotten; the overall limit still
        counts their events."""
        limiter = WindowLimiter(
            self.clock.seconds, per_key=((1, 30.0),), overall=((25, 60.0),), max_tracked=10
        )
        for n in range(10):
            limiter.take(f"old{n}")
        self.clock.advance(30)
        for n in range(15):
            self.assertEqual(limiter.take(f"new{n}"), 0)
        self.assertLessEqual(len(limiter._keys), 10)
        self.assertEqual(limiter.take("one more"), 30)  # until the old ones are a minute old

    def test_limits_must_allow_something(self) -> None:
        for bad in ((0, 30.0), (1, 0.0)):
            self.assertRaises(ValueError, WindowLimiter, self.clock.seconds, (bad,))
