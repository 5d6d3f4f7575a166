"""How ffmpeg children start: one command-line prefix, one environment rule, one set of pipes."""

from __future__ import annotations

import imageio_ffmpeg
from twisted.internet.protocol import ProcessProtocol
from twisted.trial import unittest

from owncast.transcode import ffenv


class _Recorder:
    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None):
        self.call = (protocol, executable, args, env, childFDs)


class FfenvTests(unittest.TestCase):
    def test_command_prefix(self):
        """``-nostdin`` only for an ffmpeg that does not read its input from stdin."""
        self.assertEqual(
            ffenv.command("/bin/ffmpeg", "error", reads_stdin=False),
            ["/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"],
        )
        self.assertNotIn("-nostdin", ffenv.command("ffmpeg", "warning", reads_stdin=True))

    def test_spawn_passes_argv_environment_and_pipes(self):
        """``env=None`` reaches Twisted as None: this process's environment, on POSIX."""
        reactor, protocol = _Recorder(), ProcessProtocol()
        ffenv.spawn(reactor, protocol, ("/bin/ffmpeg", "-i", "pipe:0"))
        self.assertEqual(
            reactor.call,
            (protocol, "/bin/ffmpeg", ["/bin/ffmpeg", "-i", "pipe:0"], None, ffenv.CHILD_FDS),
        )
        self.assertEqual(ffenv.CHILD_FDS, {0: "w", 1: "r", 2: "r"})

    async def test_output_of_a_real_ffmpeg(self):
        from twisted.internet import reactor

        out, _err, code = await ffenv.output(
            reactor, imageio_ffmpeg.get_ffmpeg_exe(), "-version", timeout=30
        )
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith(b"ffmpeg version"), out[:40])
