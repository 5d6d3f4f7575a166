"""owncast-py: a self-hosted live video and web chat server on Twisted."""

__version__ = "0.1.0"
#: What Owncast 0.0.7 clients read from ``versionNumber`` and ``version``.
VERSION_STRING = f"owncast-py v{__version__}"
