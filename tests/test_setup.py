"""What a fresh machine needs: the Makefile installs system packages through .ci/apt-need,
and the README names every one of them."""

from __future__ import annotations

import os
import re

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.daemon import REPO_ROOT

APT_NEED = str(REPO_ROOT / ".ci" / "apt-need")


def makefile_packages() -> set[str]:
    """The packages named in the Makefile's ``$(APT_NEED) WHAT CHECK PACKAGE...`` lines."""
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    packages = set()
    for line in text.splitlines():
        found = re.match(r'\s*\$\(APT_NEED\)\s+"[^"]*"\s+"[^"]*"\s+(.*)$', line)
        if found:
            packages.update(found.group(1).split())
    return packages


class AptNeedTests(unittest.TestCase):
    async def run_as_user(self, *args: str) -> tuple[str, int]:
        """.ci/apt-need as an ordinary user (``nobody`` when the tests run as root), who
        may not install anything."""
        argv = ["/bin/sh", APT_NEED, *args]
        if os.geteuid() == 0:
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
        out, err, code = await getProcessOutputAndValue(
            argv[0], argv[1:], env=dict(os.environ), reactor=reactor
        )
        return (out + err).decode(), code

    async def test_nothing_happens_when_the_check_passes(self):
        self.assertEqual(await self.run_as_user("the tests", "true", "no-such-package"), ("", 0))

    async def test_a_missing_package_is_named_with_the_command_that_installs_it(self):
        output, code = await self.run_as_user(
            "hls.js from the npm registry", "command -v no-such-command", "nodejs", "npm"
        )
        self.assertEqual(code, 1)
        self.assertIn("hls.js from the npm registry needs nodejs npm", output)
        self.assertIn("apt-get install nodejs npm", output)

    def test_the_readme_names_every_package_the_makefile_installs(self):
        packages = makefile_packages()
        self.assertTrue(
            {"python3-venv", "nodejs", "npm", "chromium", "redis-server", "systemd"} <= packages,
            packages,
        )
        readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
        setup = readme[readme.index("## Two commands") : readme.index("`make run` serves")]
        for package in sorted(packages):
            self.assertIn(f"`{package}`", setup, package)
        self.assertIn("apt-get install make git python3", setup)
