"""Where the web assets (viewer page, admin page, vendored libraries) are on disk.

The assets live in ``web/`` at the top of the checkout. The wheel ships them inside the
package as ``owncast/web/``, so an installed daemon needs no checkout; an editable install
(``make install``) has no such folder and serves the checkout's ``web/`` directly, so edits
to the pages show without a rebuild.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def find_web_root(package: Path = _PACKAGE) -> Path:
    """The installed copy inside ``package`` if there is one, else ``web/`` beside it."""
    installed = package / "web"
    if (installed / "index.html").is_file():
        return installed
    return package.parent / "web"


WEB_ROOT = find_web_root()
