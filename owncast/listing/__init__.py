"""Listing the server in public directories: the Owncast directory (YP) pinger."""
