"""LL-HLS below twisted.web (``owncast.http.llfast``): real sockets to the real site, a
rendition fed the real ffmpeg's fMP4 one fragment at a time, so a test decides when
each part lands."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.trial import unittest

from owncast.http.llrequest import INIT, MASTER, PART, PLAYLIST, SEGMENT, blocking, plan_of
from owncast.http.site import WEB_ROOT, build_site
from owncast.llhls.boxes import BoxReader
from owncast.llhls.output import LlOutput
from owncast.llhls.rendition import Rendition
from tests.daemon import wait_until
from tests.helpers import make_context
from tests.test_fastpath import LoopbackCase, get
from tests.test_llhls import PART_TARGET, sample

#: A header that keeps a request off the fast path and changes nothing in its answer.
SLOW = b"If-None-Match: *"


class LlFastPathTests(LoopbackCase):
    timeout = 60

    async def setUp(self) -> None:
        self.ctx = make_context(Path(self.mktemp()))
        self.ctx.viewers.stream_started()
        self.output = LlOutput()
        #: the clock's time at each of the fast path's quiet moments
        self.quiets: list[float] = []
        quiet = lambda: self.quiets.append(self.ctx.reactor.seconds())  # noqa: E731
        self.site = build_site(self.ctx, WEB_ROOT, ll_output=self.output, quiet=quiet)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.slow: list[bytes] = []
        resource = self.site.hls_fast.ll.resource
        render = resource.render_GET

        def counted(request):
            self.slow.append(request.uri)
            return render(request)

        resource.render_GET = counted
        boxes = BoxReader().feed(await sample())
        self.rendition = Rendition(1.0, PART_TARGET, 12)
        self.rendition.feed(boxes[0][1] + boxes[1][1])
        self.fragments = [boxes[i][1] + boxes[i + 1][1] for i in range(2, len(boxes) - 1, 2)]
        for _ in range(7):  # a complete segment and a few parts
            self.land()
        self.output.renditions = [self.rendition]
        self.output.variants = [{"videoBitrate": 400, "audioBitrate": 64}]

    def land(self) -> None:
        """The next part arrives."""
        self.rendition.feed(self.fragments.pop(0))

    def next_position(self) -> bytes:
        r = self.rendition
        return b"_HLS_msn=%d&_HLS_part=%d" % (r.open.msn, len(r.open.parts))

    async def test_answers_now_are_twisted_webs(self) -> None:
        """Master, playlists (plain, delta, blocking on a position already there), init,
        segment and part come from below twisted.web with twisted.web's status, headers
        and body."""
        client = await self.connect()
        names = [
            b"stream.m3u8",
            b"0/stream.m3u8",
            b"0/stream.m3u8?_HLS_skip=YES",
            b"0/stream.m3u8?_HLS_msn=1&_HLS_part=1",
            b"0/stream.m3u8?_HLS_msn=0",
            b"0/init0.mp4",
            b"0/seg0.m4s",
            b"0/part%d.m4s" % (self.rendition.next_part - 1),
        ]
        for name in names:
            [slow] = await self.exchange(client, get(b"/hls/" + name, SLOW))
            [fast] = await self.exchange(client, get(b"/hls/" + name))
            self.assertEqual(fast[0], 200, name)
            self.assertSameAnswer(slow, fast)
        self.assertEqual(len(self.slow), len(names))
        self.assertEqual(self.ctx.viewers.count(), 1)

    async def test_held_requests_are_answered_when_the_part_lands(self) -> None:
        """A blocking reload for the next part and the preload-hinted part are held, and
        answered, alike on both paths, once the part lands; nothing before."""
        hinted = self.rendition.next_part
        playlist = get(b"/hls/0/stream.m3u8?_HLS_skip=YES&" + self.next_position())
        part = get(b"/hls/0/part%d.m4s" % hinted)
        clients = [await self.connect() for _ in range(4)]
        answers = [c.responses(1) for c in clients]
        for client, request in zip(clients, (playlist, part), strict=False):
            client.transport.write(request)
        for client, request in zip(clients[2:], (playlist, part), strict=True):
            client.transport.write(request[:-2] + SLOW + b"\r\n\r\n")
        await wait_until(lambda: len(self.slow) == 2, 10, "the slow path's two requests")
        self.assertFalse(any(a.called for a in answers))
        self.land()
        fast_playlist, fast_part, slow_playlist, slow_part = [(await a)[0] for a in answers]
        self.assertIn(b'URI="part%d.m4s"' % hinted, fast_playlist[2])
        self.assertIn(b"max-age", fast_playlist[1][b"cache-control"])
        self.assertEqual(fast_part[2], self.rendition.part(hinted).data)
        self.assertSameAnswer(slow_playlist, fast_playlist)
        self.assertSameAnswer(slow_part, fast_part)

    async def test_many_waiters_get_the_same_answer_and_go_on(self) -> None:
        """Two hundred keep-alive clients held on the same part all get it, and each goes
        on to hold for the next one on the same connection."""
        clients = [await self.connect() for _ in range(200)]
        for _ in range(2):
            hinted = self.rendition.next_part
            requests = [
                get(b"/hls/0/stream.m3u8?" + self.next_position()),
                get(b"/hls/0/part%d.m4s" % hinted),
            ]
            answers = []
            for n, client in enumerate(clients):
                answers.append(client.responses(1))
                client.transport.write(requests[n % 2])
            await wait_until(lambda: self._held() == 200, 10, "every client held")
            self.land()
            bodies = {(await a)[0][2] for a in answers}
            self.assertEqual(len(bodies), 2)
            self.assertIn(self.rendition.part(hinted).data, bodies)
        self.assertEqual(self.slow, [])

    async def test_next_requests_are_read_as_the_answers_go_out(self) -> None:
        """A next request already sent when a held one is answered is read in the same
        turn: a blocking reload and a part are held again at once, anything else takes
        the channel's usual way (the init: answered, after the part)."""
        clients = [await self.connect() for _ in range(3)]
        hinted, msn = self.rendition.next_part, self.rendition.open.msn
        firsts = [
            get(b"/hls/0/stream.m3u8?" + self.next_position()),
            get(b"/hls/0/part%d.m4s" % hinted),
            get(b"/hls/0/part%d.m4s" % hinted),
        ]
        answers = [client.responses(n) for client, n in zip(clients, (1, 1, 2), strict=True)]
        for client, request in zip(clients, firsts, strict=True):
            client.transport.write(request)
        await wait_until(lambda: self._held() == 3, 10, "every request held")
        nexts = [
            get(b"/hls/0/stream.m3u8?_HLS_msn=%d" % (msn + 2)),
            get(b"/hls/0/part%d.m4s" % (hinted + 1)),
            get(b"/hls/0/init0.mp4"),
        ]
        for client, request in zip(clients, nexts, strict=True):
            client.transport.socket.sendall(request)  # in the server's socket, unread
        self.land()
        self.assertEqual(self._held(), 2)  # read and held again, no reactor turn between
        playlist, part, (part_again, init) = [await a for a in answers]
        self.assertIn(b'URI="part%d.m4s"' % hinted, playlist[0][2])
        self.assertEqual(part[0][2], self.rendition.part(hinted).data)
        self.assertEqual((part_again[2], init[2]), (part[0][2], self.rendition.inits[0]))
        self.assertEqual(self.slow, [])

    async def test_clients_gone_before_their_next_read_are_left_alone(self) -> None:
        """A client answered at once (a part that exists) is read again after the poll's
        batch; one that has gone by then, or whose connection is closing, is skipped
        without a read or an error."""
        ll = self.site.hls_fast.ll
        answered: list = []
        send = ll._send

        def recorded(channel, data, code=200):
            answered.append(channel)
            send(channel, data, code)

        ll._send = recorded
        clients = [await self.connect() for _ in range(2)]
        existing = self.rendition.next_part - 1
        for client in clients:
            [(code, _, _)] = await self.exchange(client, get(b"/hls/0/part%d.m4s" % existing))
            self.assertEqual(code, 200)
        gone, closing = answered
        clients[0].transport.loseConnection()
        await wait_until(lambda: gone.transport.disconnected, 10, "the server side closed")
        closing.transport.disconnecting = True
        clients[1].transport.socket.sendall(get(b"/hls/0/part%d.m4s" % existing))
        reader = ll._reader
        reader._answered.extend([gone, closing])
        reader.catch_up()  # neither is read: no error, the request stays in the socket
        self.assertEqual(reader._answered, [])
        closing.transport.disconnecting = False
        [(code, _, body)] = await clients[1].responses(1)  # the reactor reads it
        self.assertEqual((code, body), (200, self.rendition.part(existing).data))

    def _held(self) -> int:
        groups = [
            group
            for watched in self.site.hls_fast.ll._watched.values()
            for group in (*watched.playlists.values(), *watched.parts.values())
        ]
        return sum(len(g.waiting) for g in groups)

    async def test_a_client_that_leaves_is_waited_for_no_more(self) -> None:
        """Closing the connection of a held request takes it out of its group at once."""
        client = await self.connect()
        client.transport.write(get(b"/hls/0/stream.m3u8?" + self.next_position()))
        await wait_until(lambda: self._held() == 1, 10, "the request held")
        client.transport.loseConnection()
        await wait_until(lambda: self._held() == 0, 10, "the request let go")
        self.land()

    async def test_requests_behind_a_held_one_are_answered_after_it(self) -> None:
        """A request pipelined behind a held one waits its turn; a stalled stream answers
        the held one 503 after three target durations, then the one behind."""
        client = await self.connect()
        held = get(b"/hls/0/stream.m3u8?" + self.next_position())
        behind = get(b"/hls/0/init0.mp4")
        client.transport.write(held + behind)
        await wait_until(lambda: self._held() == 1, 10, "the request held")
        self.ctx.reactor.advance(2.9 * self.rendition.target_duration)
        self.assertEqual(self._held(), 1)
        self.ctx.reactor.advance(0.2 * self.rendition.target_duration)
        answers = await client.responses(2)
        self.assertEqual([a[0] for a in answers], [503, 200])
        self.assertEqual(answers[0][2], b"try again")
        self.assertEqual(answers[1][2], self.rendition.inits[0])
        self.assertEqual(self.site.statuses.get(503), 1)

    async def test_odd_requests_take_twisted_web(self) -> None:
        """Bad or unusual queries and unknown names are twisted.web's to answer."""
        client = await self.connect()
        for name, code in [
            (b"0/stream.m3u8?_HLS_part=1", 400),
            (b"0/stream.m3u8?_HLS_msn=x", 400),
            (b"0/stream.m3u8?_HLS_msn=99999", 400),
            (b"0/stream.m3u8?other=1", 200),
            (b"0/part99999.m4s", 404),
            (b"1/stream.m3u8", 404),
            (b"0/seg99.m4s", 404),
        ]:
            [answer] = await self.exchange(client, get(b"/hls/" + name))
            self.assertEqual(answer[0], code, name)
        self.assertEqual(len(self.slow), 7)

    async def test_a_quiet_moment_follows_the_landing_of_every_renditions_part(self) -> None:
        """Once every watched rendition's part has landed and been answered, the fast
        path says so (``quiet``: where a due full collection runs), and not while another
        rendition's part, due about now, has yet to land."""
        boxes = BoxReader().feed(await sample())
        other = Rendition(1.0, PART_TARGET, 12)
        other.feed(boxes[0][1] + boxes[1][1])
        fragments = [boxes[i][1] + boxes[i + 1][1] for i in range(2, len(boxes) - 1, 2)]
        for fragment in fragments[:7]:  # where the first rendition is
            other.feed(fragment)
        later = fragments[7:]
        self.output.renditions = [self.rendition, other]
        self.output.variants = [{"videoBitrate": 400, "audioBitrate": 64}] * 2
        clients = [await self.connect() for _ in range(2)]
        for _ in range(2):
            answers = [client.responses(1) for client in clients]
            for n, client in enumerate(clients):
                hinted = self.output.renditions[n].next_part
                client.transport.write(get(b"/hls/%d/part%d.m4s" % (n, hinted)))
            await wait_until(lambda: self._held() == 2, 10, "both parts held")
            quiets = len(self.quiets)
            self.land()
            await answers[0]
            self.assertEqual(len(self.quiets), quiets)  # the other's part is due
            other.feed(later.pop(0))
            await answers[1]
            self.assertEqual(self.quiets[quiets:], [self.ctx.reactor.seconds()])
            self.ctx.reactor.advance(PART_TARGET)

    async def test_an_ended_stream_answers_the_held_part_404(self) -> None:
        """When the broadcast ends, a held preload-hint part will never come: 404."""
        client = await self.connect()
        answer = client.responses(1)
        client.transport.write(get(b"/hls/0/part%d.m4s" % self.rendition.next_part))
        await wait_until(lambda: self._held() == 1, 10, "the part request held")
        self.rendition.end()
        [(code, _, body)] = await answer
        self.assertEqual((code, body), (404, b"not found"))


class PlanTests(unittest.TestCase):
    """What a request name asks for (``owncast.http.llrequest``), read without a server."""

    def test_names_and_queries(self) -> None:
        cases = {
            b"stream.m3u8": (MASTER, 0, None, None, False),
            b"1/stream.m3u8": (PLAYLIST, 1, None, None, False),
            b"0/stream.m3u8?_HLS_msn=7&_HLS_part=2&_HLS_skip=YES": (PLAYLIST, 0, 7, 2, True),
            b"0/stream.m3u8?_HLS_skip=v2&_HLS_msn=7": (PLAYLIST, 0, 7, None, True),
            b"0/init3.mp4": (INIT, 0, 3, None, False),
            b"0/seg1700000000.m4s": (SEGMENT, 0, 1700000000, None, False),
            b"2/part41.m4s": (PART, 2, 41, None, False),
        }
        for name, plan in cases.items():
            self.assertEqual(plan_of(name), plan, name)
        self.assertTrue(blocking(plan_of(b"0/stream.m3u8?_HLS_msn=7")))
        self.assertFalse(blocking(plan_of(b"0/stream.m3u8")))
        for name in (
            b"stream.m3u8?x=1",
            b"0/stream.m3u8?_HLS_part=2",  # a part without its segment: 400
            b"0/stream.m3u8?_HLS_msn=-1",
            b"0/stream.m3u8?_HLS_msn=1&_HLS_msn=2",
            b"0/stream.m3u8?other=1",
            b"0/part1.m4s?x",
            b"0/thumbnail.jpg",
            b"x/stream.m3u8",
            b"1234567/stream.m3u8",
        ):
            self.assertIsNone(plan_of(name), name)
