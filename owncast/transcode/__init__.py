"""The transcoding half of live video: FLV from the ingest -> ffmpeg -> HLS on disk -> ``/hls``.

* ``argv``: the ffmpeg command line built from the video settings (pure).
* ``flv``: tag boundaries, keyframes and codec config of the FLV passing through.
* ``process``: ``Transcoder``, the service that runs, feeds, restarts and stops ffmpeg.
* ``hls``: ``HlsResource``, the ``twisted.web`` resource serving the output directory.

``ITranscoder`` is the seam the RTMP ingest talks to (it belongs with the other seams in
``owncast.interfaces`` once that module can take it).
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ITranscoder(Interface):
    """Turns the FLV of one broadcast at a time into HLS.

    The ingest calls ``start()`` when a publisher goes live, ``write(data)`` with the FLV
    bytes (the FLV header first, then whole or partial tags, timestamps already right),
    and ``stop()`` when the broadcast ends.
    """

    live = Attribute("True between start() and stop()")

    def start() -> object:
        """A broadcast begins: ffmpeg is spawned once the FLV header has arrived.

        Fires (never fails) when ffmpeg was spawned or is waiting for the FLV header.
        """

    def write(data: bytes) -> None:
        """FLV bytes of the live broadcast; ignored when not live."""

    def stop() -> object:
        """The broadcast ended: fire once no ffmpeg process is left."""

    def reload() -> object:
        """Restart ffmpeg with the current settings (the playlists continue)."""
