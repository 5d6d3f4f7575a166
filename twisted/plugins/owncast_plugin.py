"""``twistd owncast``: the plugin is one ServiceMaker pointing at ``owncast.tap``."""

from twisted.application.service import ServiceMaker

owncast = ServiceMaker(
    "owncast",
    "owncast.tap",
    "Live video (RTMP in, HLS out) and web chat server, API-compatible with Owncast 0.0.7",
    "owncast",
)
