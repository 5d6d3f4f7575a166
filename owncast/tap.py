"""``twistd owncast`` options and ``makeService``: the tree is built (``owncast.service``),
nothing is opened until it starts."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from twisted.python import usage

from owncast.core.throttle import parse_networks
from owncast.listing.directory import DEFAULT_DIRECTORY
from owncast.service import Config, OwncastService, build
from owncast.store.redisconfig import RedisConfig

#: option -> (default, converter); defaults apply after the config file is read.
_OPTIONS: dict[str, tuple[Any, Any]] = {
    "datadir": ("./data", str),
    "webserverport": (None, int),
    "rtmpport": (None, int),
    "streamkey": (None, str),
    "ffmpeg": (None, str),
    "redis": (None, str),
    "directoryurl": (None, str),
    "listen": (None, str),
    "rtmplisten": (None, str),
}
#: Keys of the config file that are not parameters: flags and repeatable options.
_CONFIG_FLAGS = ("allowprivate",)
_CONFIG_LISTS = ("trustedproxy",)


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError(f"port out of range: {number}")
    return number


class Options(usage.Options):
    optFlags = [
        [
            "allowprivate",
            None,
            "Let webhooks and the S3 endpoint reach loopback, private and link-local "
            "addresses (refused by default).",
        ],
    ]
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
        [
            "listen",
            None,
            None,
            "Endpoint for HTTP, e.g. tcp:8080:interface=127.0.0.1 or "
            "systemd:domain=INET:index=0 (wins over --webserverport).",
        ],
        [
            "rtmplisten",
            None,
            None,
            "Endpoint for RTMP, e.g. tcp:1935 or systemd:domain=INET:index=1 "
            "(wins over --rtmpport).",
        ],
        ["config", None, None, "An INI file with an [owncast] section of these options."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["trustedproxy"] = []

    def opt_trustedproxy(self, value: str) -> None:
        """A reverse proxy (address or CIDR) whose X-Forwarded-For or Forwarded header
        names the client, for throttling logins; repeatable."""
        self["trustedproxy"].append(value)

    def postOptions(self) -> None:
        if self["config"]:
            parser = configparser.ConfigParser()
            try:
                with open(self["config"], encoding="utf-8") as f:
                    parser.read_file(f)
            except (OSError, configparser.Error) as e:
                raise usage.UsageError(f"cannot read --config {self['config']}: {e}") from e
            section = parser["owncast"] if parser.has_section("owncast") else {}
            unknown = set(section) - set(_OPTIONS) - set(_CONFIG_FLAGS) - set(_CONFIG_LISTS)
            if unknown:
                raise usage.UsageError(f"unknown keys in --config: {', '.join(sorted(unknown))}")
            for key, value in section.items():
                if key in _CONFIG_FLAGS:
                    try:
                        self[key] = self[key] or parser.getboolean("owncast", key)
                    except ValueError as e:
                        raise usage.UsageError(f"--config {key}: {e}") from e
                    continue
                if key in _CONFIG_LISTS:
                    if not self[key]:
                        self[key] = value.replace(",", " ").split()
                    continue
                if self[key] is None and value.strip():
                    try:
                        self[key] = _port(value) if key.endswith("port") else value.strip()
                    except ValueError as e:
                        raise usage.UsageError(f"--config {key}: {e}") from e
        for key, (default, _) in _OPTIONS.items():
            if self[key] is None:
                self[key] = default
        if self["redis"]:
            redis_config(self["redis"])  # fail now, not at startup
        try:
            parse_networks(self["trustedproxy"])
        except ValueError as e:
            raise usage.UsageError(f"--trustedproxy: {e}") from e


def makeService(options: Options, reactor: Any = None) -> OwncastService:
    if reactor is None:
        from twisted.internet import reactor
    overrides: dict[str, Any] = {}
    if options["webserverport"] is not None:
        overrides["webServerPort"] = options["webserverport"]
    if options["rtmpport"] is not None:
        overrides["rtmpServerPort"] = options["rtmpport"]
    if options["streamkey"]:
        overrides["streamKey"] = options["streamkey"]
    config = Config(
        datadir=Path(options["datadir"]),
        overrides=overrides,
        listen=options["listen"],
        rtmp_listen=options["rtmplisten"],
        ffmpeg=options["ffmpeg"],
        directory_url=options["directoryurl"] or DEFAULT_DIRECTORY,
        trusted_proxies=tuple(options["trustedproxy"]),
        allow_private=bool(options["allowprivate"]),
    )
    if not options["redis"]:
        return build(reactor, config)
    from owncast.store.redis import RedisStore
    from owncast.store.redisbus import RedisChatBus

    redis = redis_config(options["redis"])
    return build(
        reactor,
        config,
        store=RedisStore(reactor, redis),
        chat_bus=RedisChatBus(reactor, redis),
        shared=True,
    )


def redis_config(url: str) -> RedisConfig:
    """``--redis``: a ``RedisConfig``, or a usage error that says what is wrong."""
    try:
        return RedisConfig.from_url(url)
    except ValueError as e:
        raise usage.UsageError(f"--redis {e}") from e
