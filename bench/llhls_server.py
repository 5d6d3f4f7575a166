"""The server side of the LL-HLS benchmark: ``python -m bench.llhls_server MODE ...``.

Both modes replay a recording of the real ffmpeg's low-latency output (fragmented MP4,
one fragment per part, as ``owncast.transcode.argv.build_ll_argv`` asks for) into a
``Rendition`` in real time: each fragment is fed when its media time has passed since the
start, as ffmpeg would write it. Each part's scheduled time (``time.monotonic``, the same
clock in every process) and the time it was fed are appended to the ``--stamps`` file as
``<part> <scheduled> <fed>``, so
the load generator can tell how long after its creation each part reached each viewer.

``serve PORT``: our HTTP side alone on the real reactor: ``OwncastSite`` with its
channel, the HLS fast path and ``/hls/`` as the daemon builds it (``hls_switch`` over the
``LlOutput``), one rendition. No ffmpeg, no ingest, no API: what this process spends is
what serving LL-HLS costs.

``files DIR``: the peer's side: the same parts, complete segments, init section and the
media playlist written as files into ``DIR/hls/0/`` (the playlist replaced atomically
after its part is written) for nginx to serve.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from twisted.web.resource import Resource

from owncast.core.viewers import Viewers
from owncast.http.fastpath import HlsFastPath
from owncast.http.llhls import hls_switch
from owncast.http.site import _SECURITY_HEADERS, OwncastSite
from owncast.llhls.boxes import BoxReader, parse_moof, parse_moov
from owncast.llhls.output import PART_TARGET, SEGMENT_SECONDS, WINDOW, LlOutput
from owncast.llhls.rendition import Rendition
from owncast.runtime.heap import FullCollections, settle_heap


def fragments(recording: bytes) -> tuple[bytes, list[tuple[bytes, float]]]:
    """(ftyp + moov, [(moof + mdat, media seconds)]) of an fMP4 recording."""
    boxes = BoxReader().feed(recording)
    kinds = [kind for kind, _ in boxes]
    moov = kinds.index(b"moov")
    tracks = parse_moov(boxes[moov][1])
    out = []
    moof = b""
    for kind, box in boxes[moov + 1 :]:
        if kind == b"moof":
            moof = box
        elif kind == b"mdat" and moof:
            runs = parse_moof(moof, tracks)
            video = [r for tid, r in runs.items() if tracks[tid].video]
            lead = video[0] if video else max(runs.values(), key=lambda r: r.duration)
            out.append((moof + box, lead.duration))
            moof = b""
    return b"".join(box for _, box in boxes[: moov + 1]), out


class Replay:
    """Feeds ``rendition`` the recording in real time; ``landed(part)`` after each part."""

    def __init__(
        self, reactor: Any, rendition: Rendition, recording: bytes, stamps: str, landed: Any
    ) -> None:
        self.reactor = reactor
        self.rendition = rendition
        self.init, self.fragments = fragments(recording)
        self.stamps = open(stamps, "a")  # noqa: SIM115 (closed with the process)
        self.landed = landed
        self.n = 0

    def start(self) -> None:
        self.rendition.feed(self.init)
        self.started = time.monotonic()
        self.due = self.started
        self._next()

    def _next(self) -> None:
        if self.n >= len(self.fragments):
            self.rendition.end()
            self.landed(None)
            return
        data, seconds = self.fragments[self.n]
        self.due += seconds
        self.reactor.callLater(max(0.0, self.due - time.monotonic()), self._feed, data)

    def _feed(self, data: bytes) -> None:
        index = self.rendition.next_part
        fed = time.monotonic()
        self.rendition.feed(data)
        self.stamps.write(f"{index} {self.due:.6f} {fed:.6f}\n")
        self.stamps.flush()
        self.landed(index)
        self.n += 1
        self._next()


class _NoFiles:
    """The MPEG-TS side of ``/hls/``, which this benchmark never asks for."""

    def from_memory(self, name: bytes) -> None:
        return None


def serve(reactor: Any, port: int, recording: bytes, stamps: str, fast_ll: bool = True) -> None:
    output = LlOutput()
    output.renditions = [Rendition(SEGMENT_SECONDS, PART_TARGET, WINDOW)]
    output.variants = [{"videoBitrate": 800, "audioBitrate": 64}]
    viewers = Viewers(reactor.seconds)
    viewers.stream_started()
    switch = hls_switch(reactor, output, Resource(), lambda request: None)
    root = Resource()
    root.putChild(b"hls", switch)
    headers = _SECURITY_HEADERS.items()  # as the daemon's site sends them
    collections = FullCollections(reactor)  # as the daemon's site and heap are set up
    fast = HlsFastPath(
        _NoFiles(), viewers.seen, reactor, headers, switch if fast_ll else None,
        quiet=collections.quiet,
    )  # fmt: skip
    site = OwncastSite(root, fast, reactor=reactor, max_per_address=1 << 30)
    reactor.listenTCP(port, site, backlog=4096, interface="127.0.0.1")
    settle_heap()
    collections.start()
    Replay(reactor, output.renditions[0], recording, stamps, lambda index: None).start()

    def report() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        print(f"answered {fast.answered} in {cpu:.2f} CPU s", file=sys.stderr, flush=True)

    reactor.addSystemEventTrigger("before", "shutdown", report)


def files(reactor: Any, directory: Path, recording: bytes, stamps: str) -> None:
    folder = directory / "hls" / "0"
    folder.mkdir(parents=True, exist_ok=True)
    rendition = Rendition(SEGMENT_SECONDS, PART_TARGET, WINDOW)
    written: set[str] = set()

    def put(name: str, data: bytes) -> None:
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)

    def landed(index: int | None) -> None:
        if index is not None:
            part = rendition.part(index)
            assert part is not None
            put(f"part{index}.m4s", part.data)
        for n, data in rendition.inits.items():
            if f"init{n}.mp4" not in written:
                put(f"init{n}.mp4", data)
                written.add(f"init{n}.mp4")
        for segment in rendition.segments:
            if f"seg{segment.msn}.m4s" not in written:
                put(f"seg{segment.msn}.m4s", segment.data)
                written.add(f"seg{segment.msn}.m4s")
        put("stream.m3u8", rendition.playlist().encode())

    Replay(reactor, rendition, recording, stamps, landed).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("serve", "files"))
    parser.add_argument("where", help="serve: the port; files: the directory")
    parser.add_argument("recording", help="the fMP4 recording to replay")
    parser.add_argument("--stamps", required=True, help="append part creation times here")
    parser.add_argument("--profile", help="run under cProfile and dump the stats here")
    parser.add_argument(
        "--twisted-web", action="store_true", help="serve: LL-HLS through twisted.web only"
    )
    args = parser.parse_args()

    from twisted.internet import reactor

    recording = Path(args.recording).read_bytes()
    if args.mode == "serve":
        serve(reactor, int(args.where), recording, args.stamps, not args.twisted_web)
    else:
        files(reactor, Path(args.where), recording, args.stamps)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    if args.profile:
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU, not wall: the core is shared
        profile.runcall(reactor.run)
        profile.dump_stats(args.profile)
    else:
        reactor.run()


if __name__ == "__main__":
    main()
