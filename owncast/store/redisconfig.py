"""Where the shared Redis is and how to reach it: one value that the store and the chat bus
both take, read once from ``--redis redis://[:password@]host[:port][/db]``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RedisConfig:
    host: str = "127.0.0.1"
    port: int = 6379
    #: the database to ``SELECT`` (None: the server's default, 0)
    dbid: int | None = None
    password: str | None = None
    #: starts every key and the chat channel, so deployments can share one database
    key_prefix: str = "owncast:"
    #: seconds to wait at start before giving up, loudly
    connect_timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str) -> RedisConfig:
        """``redis://[:password@]host[:port][/db]`` (the scheme may be left out); a
        ``ValueError`` that says what is wrong otherwise."""
        parts = urlsplit(url if "://" in url else "redis://" + url)
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError(f"must look like redis://host:port/db, not {url!r}")
        try:
            port = parts.port or 6379
            dbid = int(parts.path.strip("/") or 0)
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from e
        return cls(host=parts.hostname, port=port, dbid=dbid, password=parts.password)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
