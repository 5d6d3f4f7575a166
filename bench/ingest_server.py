"""Our RTMP ingest alone, for the ingest benchmark: ``python -m bench.ingest_server PORT KEY``.

Only ``owncast.rtmp.session.RtmpFactory`` on the real reactor, in front of a ``Broadcasts``
whose sink drops the media tags it is handed (like the default ``NullSink``; this one also
counts the FLV bytes they would be, so the benchmark can check that the publish really
went through). No web server, no transcoder: what this process spends is what parsing the
RTMP stream into classified tags costs.

With ``--stats PATH`` it writes ``{"flv_bytes", "broadcasts"}`` as JSON there on exit
(SIGTERM stops the reactor cleanly).
"""

from __future__ import annotations

import argparse
import json

from twisted.internet.defer import Deferred

from owncast.core.broadcast import Broadcasts, NullSink
from owncast.core.stream import StreamState
from owncast.media import MediaTag
from owncast.media.flv import TAG_OVERHEAD
from owncast.rtmp.session import RtmpFactory
from owncast.runtime.heap import settle_heap


class CountingSink(NullSink):
    """Drops the tags like ``NullSink``; counts the FLV bytes they would be to ffmpeg (one
    addition per tag)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.starts = 0

    def begin(self) -> Deferred:
        self.starts += 1
        return super().begin()

    def media(self, tag: MediaTag) -> None:
        self.bytes += len(tag.payload) + TAG_OVERHEAD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("key")
    parser.add_argument("--stats", help="write a JSON summary here on exit")
    parser.add_argument("--profile", help="run under cProfile and dump the stats here")
    args = parser.parse_args()

    from twisted.internet import reactor

    sink = CountingSink()
    broadcasts = Broadcasts(StreamState(reactor.seconds), lambda: args.key, sink)
    reactor.listenTCP(args.port, RtmpFactory(broadcasts, reactor), interface="127.0.0.1")
    settle_heap()  # as the daemon does once started
    if args.profile:
        import cProfile

        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor}, args.profile)
    else:
        reactor.run()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump({"flv_bytes": sink.bytes, "broadcasts": sink.starts}, f)


if __name__ == "__main__":
    main()
