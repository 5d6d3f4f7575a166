"""The real daemon, live, with its HLS directory on a small tmpfs that fills up and empties
again: no segment listed is ever cut short, "Disk full" is logged once per episode and
shown in the admin status, and the stream recovers when space is back.

The tmpfs is mounted in a mount namespace of the daemon's own (``unshare --map-root-user
--mount``, which needs no privilege where user namespaces are enabled); the test fills
and empties it through ``/proc/<pid>/root``, the daemon's view of the file system.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from twisted.internet.threads import deferToThread

from owncast.http.diskfull import complete
from tests.daemon import Daemon, sleep, wait_until
from tests.test_live_e2e import LiveCase, tmpdir

TMPFS_MIB = 64
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
#: Mounts a tmpfs on $0 in the new namespace, then runs the daemon ("$@").
_MOUNT = 'mount -t tmpfs -o size={size}m tmpfs "$0" && exec "$@"'


class TmpfsDaemon(Daemon):
    """A ``Daemon`` whose ``<datadir>/hls`` is a ``TMPFS_MIB`` MiB tmpfs of its own."""

    def argv(self) -> list[str]:
        assert self.datadir is not None
        hls = self.datadir / "hls"
        hls.mkdir(parents=True, exist_ok=True)
        mount = ["sh", "-c", _MOUNT.format(size=TMPFS_MIB), str(hls)]
        return [UNSHARE, "--map-root-user", "--mount", *mount, *super().argv()]

    def seen(self, path: Path) -> str:
        """``path`` as the daemon sees it (inside its mount namespace)."""
        return f"/proc/{self.pid}/root{path}"


def fill(path: str) -> int:
    """Blocking: write ``path`` until the file system is full; the bytes written."""
    chunk = b"\0" * (1024 * 1024)
    written = 0
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    # fill the last bytes too, so even a small write fails
    with open(path + ".rest", "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                written += 4096
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return written


class DiskFullTests(LiveCase):
    timeout = 240

    async def test_a_full_disk_lists_no_torn_segment_and_recovers(self):
        daemon = TmpfsDaemon(tmpdir(self))
        self.addCleanup(daemon.stop)
        await daemon.start()
        keys = daemon.generated_keys()
        auth = ("admin", keys[0])
        for name, value in (("video/streamlatencylevel", 0),):
            response = await daemon.post(f"/api/admin/config/{name}", {"value": value}, auth=auth)
            self.assertEqual(response.code, 200, response)
        publisher = self.publish(daemon, keys[0], 120)
        self.addCleanup(publisher.kill)
        hls = daemon.datadir / "hls"
        listed_ok: list[str] = []
        torn_listed: list[str] = []

        async def playlist_names() -> list[str]:
            response = await daemon.get("/hls/0/stream.m3u8")
            if response.code != 200:
                return []
            return [x for x in response.content.decode().splitlines() if x and x[0] != "#"]

        async def check_listed() -> list[str]:
            """Every segment listed now, fetched: each must be whole."""
            names = await playlist_names()
            for name in names:
                response = await daemon.get(f"/hls/0/{name}")
                if response.code != 200:
                    continue  # already out of the window
                body = response.content
                whole = bool(body) and len(body) % 188 == 0 and body[0] == body[-188] == 0x47
                (listed_ok if whole else torn_listed).append(name)
            return names

        await wait_until(check_listed, 30, "segments listed")
        self.assertFalse((await daemon.get("/api/admin/status", auth=auth)).json["diskFull"])

        filler = daemon.seen(hls / "filler")
        await deferToThread(fill, filler)

        async def full() -> bool:
            await check_listed()
            return (await daemon.get("/api/admin/status", auth=auth)).json["diskFull"]

        await wait_until(full, 30, "the admin status to say the disk is full", interval=0.5)
        for _ in range(20):  # the stream goes on against a full disk for a while
            await check_listed()
            await sleep(0.5)
        self.assertEqual(torn_listed, [])
        self.assertEqual(daemon.output.count("Disk full"), 1, daemon.output)
        torn_on_disk = [
            e.name
            for e in os.scandir(daemon.seen(hls / "0"))
            if e.name.endswith(".ts") and not complete(e.path)
        ]

        os.unlink(filler)
        os.unlink(filler + ".rest")
        before = set(await playlist_names())

        async def recovered() -> bool:
            await check_listed()
            status = (await daemon.get("/api/admin/status", auth=auth)).json
            return not status["diskFull"] and bool(set(await playlist_names()) - before)

        await wait_until(recovered, 60, "the stream to recover", interval=0.5)
        self.assertEqual(torn_listed, [])
        self.assertEqual(daemon.output.count("Disk full"), 1, daemon.output)
        self.assertEqual(daemon.output.count("Disk space is back"), 1, daemon.output)
        # what this test is about actually happened: ffmpeg did leave torn segments
        self.assertNotEqual(torn_on_disk, [], daemon.output)
