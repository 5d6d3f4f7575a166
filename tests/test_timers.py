"""The periodic jobs' loop on a fake clock: a tick that fails is logged and the next runs."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial import unittest

from owncast.runtime.timers import GuardedTimerService


class GuardedTimerServiceTests(unittest.TestCase):
    def test_every_kind_of_failure_is_logged_and_the_loop_goes_on(self):
        """A job that raises, returns a failed Deferred or a failing coroutine."""
        clock = Clock()
        calls: list[str] = []

        async def failing_later() -> None:
            calls.append("coroutine")
            raise ValueError("later")

        def job():
            kind = ("raise", "deferred", "coroutine", "fine")[len(calls) % 4]
            if kind == "raise":
                calls.append(kind)
                raise ValueError("at once")
            if kind == "deferred":
                calls.append(kind)
                return fail(ValueError("in a Deferred"))
            if kind == "coroutine":
                return failing_later()
            calls.append(kind)
            return None

        service = GuardedTimerService(10.0, job, clock, Logger(), "the test job")
        service.startService()
        for _ in range(7):
            clock.advance(10)
        self.assertEqual(calls, ["raise", "deferred", "coroutine", "fine"] * 2)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 6)
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_waits_for_a_slow_tick(self):
        """The next interval starts when the job's Deferred fires, as in TimerService."""
        clock = Clock()
        pending: list[Deferred] = []

        def job() -> Deferred:
            pending.append(Deferred())
            return pending[-1]

        service = GuardedTimerService(5.0, job, clock, Logger(), "slow job")
        service.startService()
        clock.advance(20)
        self.assertEqual(len(pending), 1)
        pending[0].callback(None)
        clock.advance(5)
        self.assertEqual(len(pending), 2)
        pending[1].callback(None)
        service.stopService()
