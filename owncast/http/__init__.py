"""The web side: the twisted.web site, the HLS resource and its fast path."""
