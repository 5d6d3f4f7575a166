"""The periodic jobs' one loop: a ``TimerService`` whose job cannot stop it.

A ``TimerService`` whose call raises, or returns a Deferred that fails, stops for good
(Twisted logs the error once and never calls again). The samplers, the directory pinger,
the segment publisher and the shared-state refresher must keep going through a bad
tick, so each is a ``GuardedTimerService``: what a tick raises is logged as
"<what> failed" on the job's own logger and the next tick comes on time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


class GuardedTimerService(TimerService):
    """Calls ``job()`` every ``interval`` seconds on ``clock``, the first time at start.

    ``job`` may return nothing, a Deferred or a coroutine; the loop waits for it before
    counting the next interval, as ``TimerService`` does. Its errors go to ``log``.
    """

    def __init__(
        self,
        interval: float,
        job: Callable[[], Any],
        clock: IReactorTime,
        log: Logger,
        what: str,
    ):
        super().__init__(interval, self._guarded)
        self.clock = self._clock = clock
        self._job = job
        self._log = log
        self._what = what

    def now(self) -> float:
        """The clock's time (``self.clock`` is optional in Twisted's types; ours is not)."""
        return self._clock.seconds()

    def _guarded(self) -> Deferred:
        d = maybeDeferred(self._job)
        d.addErrback(lambda f: self._log.failure("{what} failed", f, what=self._what))
        return d
