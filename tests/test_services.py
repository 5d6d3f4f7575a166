"""The service tree's building blocks: ordered asynchronous start, reverse stop, listeners."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from owncast.runtime.services import ListenerService, OrderedMultiService, StartStopService


class Recorded(Service):
    """A child whose start waits for the test to fire it."""

    def __init__(self, name: str, log: list, fail: bool = False):
        self.setName(name)
        self.log = log
        self.fail = fail
        self.started: Deferred = Deferred()

    def startService(self):
        super().startService()
        self.log.append(("start", self.name))
        return self.started

    def stopService(self):
        super().stopService()
        self.log.append(("stop", self.name))


def tree(*children: Service) -> OrderedMultiService:
    root = OrderedMultiService()
    for child in children:
        child.setServiceParent(root)
    return root


class OrderedStartTests(unittest.TestCase):
    def test_each_child_starts_once_the_one_before_is_up(self):
        log: list = []
        first, second = Recorded("first", log), Recorded("second", log)
        done = tree(first, second).startService()
        self.assertEqual(log, [("start", "first")])
        first.started.callback(None)
        self.assertEqual(log, [("start", "first"), ("start", "second")])
        self.assertNoResult(done)
        second.started.callback(None)
        self.successResultOf(done)

    def test_stop_is_in_reverse_order(self):
        log: list = []
        children = [Recorded(name, log) for name in ("a", "b", "c")]
        for child in children:
            child.started.callback(None)
        root = tree(*children)
        self.successResultOf(root.startService())
        del log[:]
        self.successResultOf(root.stopService())
        self.assertEqual(log, [("stop", "c"), ("stop", "b"), ("stop", "a")])

    def test_a_failed_start_stops_what_had_started_and_fails(self):
        log: list = []
        first, second, third = (Recorded(n, log) for n in ("first", "second", "third"))
        first.started.callback(None)
        done = tree(first, second, third).startService()
        second.started.errback(RuntimeError("cannot listen"))
        self.failureResultOf(done, RuntimeError)
        self.assertEqual(log, [("start", "first"), ("start", "second"), ("stop", "first")])
        self.assertFalse(second.running)
        self.assertFalse(third.running)

    def test_start_stop_service_awaits_coroutines(self):
        log: list = []

        async def start():
            log.append("opened")

        def stop():
            log.append("closed")

        service = StartStopService("thing", start, stop)
        self.assertEqual(service.name, "thing")
        self.successResultOf(service.startService())
        self.successResultOf(service.stopService())
        self.assertEqual(log, ["opened", "closed"])


class ListenerServiceTests(unittest.TestCase):
    def test_description_is_read_at_start_and_the_port_closed_at_stop(self):
        reactor = MemoryReactorClock()
        port = {"value": 8080}
        site = Site(Resource())
        listener = ListenerService("web", reactor, lambda: f"tcp:{port['value']}", site, "Web")
        port["value"] = 9191  # e.g. the stored setting, read by an earlier child
        self.successResultOf(listener.startService())
        [(number, factory, _, _)] = reactor.tcpServers
        self.assertEqual((number, factory), (9191, site))
        self.successResultOf(listener.stopService())
        self.assertIsNone(listener.port)
