"""How every ffmpeg child starts: its command-line prefix, its environment, its pipes.

The live transcode, the preview GIF and the probe that vets a configured ffmpeg all run
the same binary; they start it here, so it runs the same way for each. ``env=None``
hands ffmpeg this process's environment (Twisted's rule for ``spawnProcess`` on POSIX),
which hardware encoders (VA-API's ``LIBVA_*``) and custom builds (``LD_LIBRARY_PATH``)
may need, and which the probe therefore sees too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue

from owncast.transcode.argv import command as command  # the prefix, built purely

#: ffmpeg's stdin is written to (the FLV of the broadcast, or nothing), stdout and stderr read.
CHILD_FDS = {0: "w", 1: "r", 2: "r"}


def spawn(
    reactor: Any,
    protocol: ProcessProtocol,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    child_fds: Mapping[int, str] = CHILD_FDS,
) -> IProcessTransport:
    """Start ``argv`` (``argv[0]`` is the ffmpeg binary) on ``reactor`` (an
    ``IReactorProcess``), talking to ``protocol`` over ``child_fds`` (``CHILD_FDS``, or
    more read pipes for LL-HLS's fMP4 outputs)."""
    return reactor.spawnProcess(protocol, argv[0], list(argv), env=env, childFDs=dict(child_fds))


def output(reactor: Any, ffmpeg: str, *args: str, timeout: float) -> Deferred:
    """Run ``ffmpeg -hide_banner *args`` to its end: a Deferred of ``(stdout, stderr,
    exit code)`` that fails with ``TimeoutError`` after ``timeout`` seconds."""
    d = getProcessOutputAndValue(ffmpeg, ("-hide_banner", *args), env=None, reactor=reactor)
    d.addTimeout(timeout, reactor)
    return d
