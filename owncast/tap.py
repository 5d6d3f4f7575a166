"""``twistd owncast`` options and ``makeService``: wiring only, no I/O until the service starts."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from twisted.python import usage

from owncast.service import OwncastService

#: option -> (default, converter); defaults apply after the config file is read.
_OPTIONS: dict[str, tuple[Any, Any]] = {
    "datadir": ("./data", str),
    "webserverport": (None, int),
    "rtmpport": (None, int),
    "streamkey": (None, str),
    "ffmpeg": (None, str),
    "redis": (None, str),
    "directoryurl": (None, str),
}


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError(f"port out of range: {number}")
    return number


class Options(usage.Options):
    optParameters = [
        ["datadir", None, None, "Data directory: database, HLS output, logs, emoji. [./data]"],
        ["webserverport", None, None, "HTTP port for viewers, the API and chat. [8080]", _port],
        ["rtmpport", None, None, "RTMP port publishers stream to. [1935]", _port],
        ["streamkey", None, None, "Stream key (and admin password) for this run."],
        ["ffmpeg", None, None, "Path of the ffmpeg binary to run."],
        [
            "redis",
            None,
            None,
            "redis://HOST:PORT/DB: keep settings, tokens, webhooks and chat in Redis, shared "
            "by several nodes, instead of SQLite in the data dir.",
        ],
        [
            "directoryurl",
            None,
            None,
            "The Owncast directory to ping while listing is on. [https://directory.owncast.online]",
        ],
        ["config", None, None, "An INI file with an [owncast] section of these options."],
    ]

    def postOptions(self) -> None:
        if self["config"]:
            parser = configparser.ConfigParser()
            try:
                with open(self["config"], encoding="utf-8") as f:
                    parser.read_file(f)
            except (OSError, configparser.Error) as e:
                raise usage.UsageError(f"cannot read --config {self['config']}: {e}") from e
            section = parser["owncast"] if parser.has_section("owncast") else {}
            unknown = set(section) - set(_OPTIONS)
            if unknown:
                raise usage.UsageError(f"unknown keys in --config: {', '.join(sorted(unknown))}")
            for key, value in section.items():
                if self[key] is None and value.strip():
                    try:
                        self[key] = _port(value) if key.endswith("port") else value.strip()
                    except ValueError as e:
                        raise usage.UsageError(f"--config {key}: {e}") from e
        for key, (default, _) in _OPTIONS.items():
            if self[key] is None:
                self[key] = default
        if self["redis"]:
            redis_address(self["redis"])  # fail now, not at startup


def makeService(options: Options, reactor: Any = None) -> OwncastService:
    if reactor is None:
        from twisted.internet import reactor
    overrides = {}
    if options["webserverport"] is not None:
        overrides["webServerPort"] = options["webserverport"]
    if options["rtmpport"] is not None:
        overrides["rtmpServerPort"] = options["rtmpport"]
    if options["streamkey"]:
        overrides["streamKey"] = options["streamkey"]
    store = chat_bus = None
    if options["redis"]:
        from owncast.store.redis import RedisStore
        from owncast.store.redisbus import RedisChatBus

        store = RedisStore(reactor, **redis_address(options["redis"]))
        chat_bus = RedisChatBus(reactor, **redis_address(options["redis"]))
    return OwncastService(
        reactor=reactor,
        datadir=Path(options["datadir"]),
        overrides=overrides,
        ffmpeg_option=options["ffmpeg"],
        store=store,
        chat_bus=chat_bus,
        directory_url=options["directoryurl"],
    )


def redis_address(url: str) -> dict:
    """``redis://[:password@]host[:port][/db]`` as RedisStore arguments."""
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else "redis://" + url)
    if parts.scheme != "redis" or not parts.hostname:
        raise usage.UsageError(f"--redis must look like redis://host:port/db, not {url!r}")
    try:
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError as e:
        raise usage.UsageError(f"--redis {url!r}: {e}") from e
    return {"host": parts.hostname, "port": port, "dbid": db, "password": parts.password}
