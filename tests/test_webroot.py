"""Where the daemon finds its web assets: the wheel's copy, else the checkout's ``web/``."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from owncast.http import webroot


class FindWebRootTests(TestCase):
    def make_tree(self, installed: bool) -> Path:
        """A checkout-like folder: ``web/`` beside ``owncast/``, optionally ``owncast/web/``."""
        top = Path(self.mktemp())
        (top / "owncast").mkdir(parents=True)
        (top / "web").mkdir()
        (top / "web" / "index.html").write_text("checkout")
        if installed:
            (top / "owncast" / "web").mkdir()
            (top / "owncast" / "web" / "index.html").write_text("installed")
        return top

    def test_installed_copy_wins(self) -> None:
        """An installed wheel serves the pages shipped inside the package."""
        top = self.make_tree(installed=True)
        self.assertEqual(webroot.find_web_root(top / "owncast"), top / "owncast" / "web")

    def test_checkout_without_installed_copy(self) -> None:
        """An editable install has no ``owncast/web/`` and serves the checkout's ``web/``."""
        top = self.make_tree(installed=False)
        self.assertEqual(webroot.find_web_root(top / "owncast"), top / "web")

    def test_empty_installed_folder_is_ignored(self) -> None:
        """A leftover ``owncast/web/`` without pages does not hide the checkout's."""
        top = self.make_tree(installed=False)
        (top / "owncast" / "web").mkdir()
        self.assertEqual(webroot.find_web_root(top / "owncast"), top / "web")

    def test_this_checkout(self) -> None:
        """Run from the checkout, the pages are the top-level ``web/`` folder."""
        self.assertEqual(webroot.WEB_ROOT, Path(__file__).resolve().parent.parent / "web")
        self.assertTrue((webroot.WEB_ROOT / "index.html").is_file())
