"""Finding ffmpeg and asking it what it can do, without blocking the reactor."""

from __future__ import annotations

import os
import shutil
from typing import Any

from zope.interface import implementer

from owncast.core.errors import ValidationError
from owncast.core.settings import KNOWN_CODECS
from owncast.interfaces import IFfmpegProbe
from owncast.transcode import ffenv


def bundled_ffmpeg() -> str | None:
    """The static binary of the imageio-ffmpeg wheel, else ``ffmpeg`` on ``PATH``."""
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and os.access(path, os.X_OK):
            return path
    except Exception:  # noqa: BLE001 - a broken wheel falls back to PATH
        pass
    return shutil.which("ffmpeg")


@implementer(IFfmpegProbe)
class FfmpegProbe:
    """Runs ``ffmpeg -version`` / ``-encoders`` as child processes; caches encoder lists."""

    def __init__(self, reactor: Any, timeout: float = 10.0):
        self._reactor = reactor
        self._timeout = timeout
        self._encoders: dict[str, frozenset[str]] = {}

    async def version(self, path: str) -> str:
        if not isinstance(path, str) or not path:
            raise ValidationError("ffmpeg path must be a non-empty string")
        if not os.path.isabs(path):
            raise ValidationError("ffmpeg path must be absolute")
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ValidationError(f"{path} is not an executable file")
        try:
            out, _err, code = await ffenv.output(
                self._reactor, path, "-version", timeout=self._timeout
            )
        except Exception as e:
            raise ValidationError(f"{path} did not run: {e.__class__.__name__}") from e
        first = out.decode("utf-8", "replace").splitlines()[:1]
        if code != 0 or not first or not first[0].startswith("ffmpeg version"):
            raise ValidationError(f"{path} does not look like ffmpeg")
        return first[0]

    async def encoders(self, path: str) -> frozenset[str]:
        cached = self._encoders.get(path)
        if cached is not None:
            return cached
        out, _err, code = await ffenv.output(
            self._reactor, path, "-encoders", timeout=self._timeout
        )
        names = set()
        for line in out.decode("utf-8", "replace").splitlines():
            fields = line.split()
            # Lines look like " V....D libx264   libx264 H.264 ..."
            if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS":
                names.add(fields[1])
        result = frozenset(names)
        if code == 0:
            self._encoders[path] = result
        return result

    async def check_codec(self, path: str, codec: Any) -> str:
        if not isinstance(codec, str) or codec not in KNOWN_CODECS:
            raise ValidationError(f"codec must be one of {', '.join(KNOWN_CODECS)}")
        if codec not in await self.encoders(path):
            raise ValidationError(f"the configured ffmpeg does not offer the {codec} encoder")
        return codec
