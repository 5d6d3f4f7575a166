"""The transcoding half of live video: media tags from the ingest -> ffmpeg -> HLS on disk.

* ``argv``: the ffmpeg command line built from the video settings (pure).
* ``process``: ``Transcoder``, the service that runs, feeds, restarts and stops ffmpeg.
* ``child``: the ffmpeg ``ProcessProtocol``.
* ``output``: the HLS output directory's upkeep (numbering, discontinuities).
* ``preview``: ``preview.gif`` from the newest segment.
* ``probe``: what an ffmpeg binary is and can do.
* ``ffenv``: how every ffmpeg child starts (argv prefix, environment, pipes).

The HLS output is served by ``owncast.http.hls``.
"""
