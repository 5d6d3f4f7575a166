"""``twistd owncast``: the plugin is discovered, options and the config file merge as documented."""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from owncast.service import OwncastService
from owncast.tap import Options, makeService


class PluginTests(unittest.TestCase):
    def test_plugin_is_discovered(self):
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("owncast", makers)
        self.assertEqual(makers["owncast"].options, Options)


class OptionsTests(unittest.TestCase):
    def parse(self, *argv):
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self):
        options = self.parse()
        self.assertEqual(options["datadir"], "./data")
        self.assertIsNone(options["webserverport"])
        self.assertIsNone(options["streamkey"])

    def test_command_line(self):
        options = self.parse(
            "--datadir",
            "/tmp/x",
            "--webserverport",
            "9090",
            "--rtmpport",
            "1940",
            "--streamkey",
            "k",
            "--ffmpeg",
            "/usr/bin/ffmpeg",
        )
        self.assertEqual(
            (
                options["datadir"],
                options["webserverport"],
                options["rtmpport"],
                options["streamkey"],
                options["ffmpeg"],
            ),
            ("/tmp/x", 9090, 1940, "k", "/usr/bin/ffmpeg"),
        )

    def test_bad_port(self):
        self.assertRaises(usage.UsageError, self.parse, "--webserverport", "70000")
        self.assertRaises(usage.UsageError, self.parse, "--rtmpport", "x")

    def test_config_file_under_command_line(self):
        path = Path(self.mktemp())
        path.write_text("[owncast]\ndatadir = /srv/oc\nwebserverport = 8181\nstreamkey = filekey\n")
        options = self.parse("--config", str(path), "--streamkey", "clikey")
        self.assertEqual(options["datadir"], "/srv/oc")
        self.assertEqual(options["webserverport"], 8181)
        self.assertEqual(options["streamkey"], "clikey")

    def test_example_config_parses(self):
        example = Path(__file__).resolve().parent.parent / "etc" / "owncast.ini"
        options = self.parse("--config", str(example))
        self.assertEqual(options["datadir"], "/var/lib/owncast")

    def test_bad_config_files(self):
        path = Path(self.mktemp())
        path.write_text("[owncast]\nnonsense = 1\n")
        self.assertRaises(usage.UsageError, self.parse, "--config", str(path))
        path.write_text("[owncast]\nwebserverport = 0\n")
        self.assertRaises(usage.UsageError, self.parse, "--config", str(path))
        self.assertRaises(usage.UsageError, self.parse, "--config", str(path) + ".missing")

    def test_redis_option(self):
        from owncast.store.redis import RedisStore
        from owncast.store.redisconfig import RedisConfig
        from owncast.tap import redis_config

        self.assertEqual(
            redis_config("redis://:pw@cache:6380/2"),
            RedisConfig(host="cache", port=6380, dbid=2, password="pw"),
        )
        self.assertEqual(redis_config("127.0.0.1").port, 6379)
        self.assertRaises(usage.UsageError, self.parse, "--redis", "http://x")
        self.assertRaises(usage.UsageError, self.parse, "--redis", "redis://h/notanumber")
        options = self.parse("--redis", "redis://127.0.0.1:6379/0")
        service = makeService(options, reactor=MemoryReactorClock())
        self.assertIsInstance(service.store, RedisStore)

    def test_make_service_does_no_io(self):
        datadir = Path(self.mktemp())
        options = self.parse(
            "--datadir", str(datadir), "--webserverport", "9999", "--streamkey", "abc123"
        )
        reactor = MemoryReactorClock()
        service = makeService(options, reactor=reactor)
        self.assertIsInstance(service, OwncastService)
        self.assertEqual(service.ctx.settings["webServerPort"], 9999)
        self.assertEqual(service.ctx.settings["streamKey"], "abc123")
        self.assertFalse(datadir.exists())
        self.assertEqual((reactor.tcpServers, reactor.tcpClients), ([], []))


#: The children of the tree, in the order they start (they stop in reverse).
TREE = [
    "self-test",
    "datadir",
    "store",
    "chat-bus",
    "settings",
    "transcoder",
    "recorder",
    "chat",
    "web",
    "rtmp",
    "segment-publisher",
    "directory",
    "hardware-stats",
    "viewer-stats",
    "ready",
]


class TreeTests(unittest.TestCase):
    """makeService builds the whole tree from constructors, without starting it."""

    def tree(self, *argv):
        options = Options()
        options.parseOptions(["--datadir", self.mktemp(), *argv])
        service = makeService(options, reactor=MemoryReactorClock())
        self.assertFalse(service.running)
        return [child.name for child in service]

    def test_children_in_start_order(self):
        self.assertEqual(self.tree(), TREE)

    def test_shared_store_adds_the_refresher(self):
        names = self.tree("--redis", "redis://127.0.0.1:6379/0")
        self.assertEqual(names, TREE[:-1] + ["shared-state", "ready"])

    def test_listen_options(self):
        options = Options()
        options.parseOptions(["--listen", "tcp:0", "--rtmplisten", "unix:/tmp/x.sock"])
        self.assertEqual((options["listen"], options["rtmplisten"]), ("tcp:0", "unix:/tmp/x.sock"))
