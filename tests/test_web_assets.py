"""Files the API points clients at are there: every platform icon /api/socialplatforms
names (0.0.7's paths, which /api/config's social handles carry) is served as an image by
the real daemon."""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from tests.daemon import start_daemon


class PlatformIconTests(unittest.TestCase):
    timeout = 60

    async def test_every_named_icon_is_served(self):
        daemon = await start_daemon(self, Path(self.mktemp()).resolve())
        platforms = (await daemon.get("/api/socialplatforms")).json
        self.assertGreaterEqual(len(platforms), 20)
        for key, platform in platforms.items():
            icon = platform["icon"]
            self.assertTrue(icon.startswith("/img/platformlogos/"), (key, icon))
            response = await daemon.get(icon)
            self.assertEqual(response.code, 200, icon)
            self.assertTrue(response.header("content-type").startswith("image/"), icon)
            self.assertTrue(response.content, icon)
