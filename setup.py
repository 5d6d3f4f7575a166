"""The wheel's package list; everything else is in setup.cfg.

setup.cfg cannot add names to a found list, and the wheel needs three kinds: owncast's
packages, found so that a new one is never left out; ``twisted.plugins``, which has no
``__init__.py`` (Twisted's rule) so discovery skips it; and the top-level ``web/`` folder,
shipped as ``owncast/web/`` so an installed daemon serves its pages without the checkout.
"""

from setuptools import find_namespace_packages, find_packages, setup

# Every folder of web/ is named, or setuptools warns that it looks like a package left out;
# their files come from the one recursive pattern on owncast.web in setup.cfg.
WEB = ["owncast.web", *(f"owncast.web.{name}" for name in find_namespace_packages(where="web"))]

setup(
    packages=[*find_packages(include=["owncast", "owncast.*"]), "twisted.plugins", *WEB],
    package_dir={"owncast.web": "web"},
)
