"""Segments in S3-compatible storage (AWS S3, MinIO, Spaces, B2, Wasabi...).

Requests are path-style (``<endpoint>/<bucket>/<key>``), which every S3-compatible
service accepts, signed with Signature Version 4 (``sigv4``). Viewers fetch from
``servingEndpoint`` when it is set (a CDN in front of the bucket), else from the bucket
URL itself, so the bucket (or the CDN) must let them read: set ``acl`` to
``public-read`` or give the bucket a public-read policy. Requests go out through
``http.client.OutboundClient``: a private endpoint (a MinIO on this host or network)
needs ``allow_private`` (``--allowprivate``).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from zope.interface import implementer

from owncast.http.client import OutboundClient
from owncast.interfaces import ISegmentStorage
from owncast.segments.sigv4 import canonical_path, sign

DEFAULT_REGION = "us-east-1"
TIMEOUT = 30.0


class S3Error(Exception):
    """S3 answered a request with an error status."""

    def __init__(self, method: str, key: str, code: int, body: bytes):
        super().__init__(f"S3 {method} {key}: HTTP {code}: {body[:300]!r}")
        self.code = code


@implementer(ISegmentStorage)
class S3SegmentStorage:
    """``config`` is the ``s3`` setting; ``reactor`` dates the signatures and, unless an
    ``OutboundClient`` is given as ``http``, carries the requests."""

    def __init__(
        self,
        config: dict,
        reactor: Any,
        http: OutboundClient | None = None,
        allow_private: bool = False,
    ):
        self.config = dict(config)
        self._clock = reactor
        self._http = http if http is not None else OutboundClient(reactor, allow_private)
        endpoint = urlsplit(config["endpoint"].rstrip("/"))
        self._scheme, self._host = endpoint.scheme, endpoint.netloc
        self._base_path = endpoint.path.rstrip("/")
        self._bucket = config["bucket"]
        self._region = config.get("region") or DEFAULT_REGION
        serving = (config.get("servingEndpoint") or "").rstrip("/")
        self._serving = serving or f"{config['endpoint'].rstrip('/')}/{self._bucket}"

    def url(self, key: str) -> str:
        return f"{self._serving}/{canonical_path(key)}"

    def _path(self, key: str = "") -> str:
        return f"{self._base_path}/{self._bucket}" + (f"/{key}" if key else "")

    async def _request(
        self, method: str, key: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        path = self._path(key)
        signed = sign(
            method,
            self._host,
            path,
            headers or {},
            hashlib.sha256(body).hexdigest(),
            self.config["accessKey"],
            self.config["secret"],
            self._region,
            self._clock.seconds(),
        )
        code, content = await self._http.request(
            method, f"{self._scheme}://{self._host}{canonical_path(path)}", signed, body, TIMEOUT
        )
        if code >= 300:
            raise S3Error(method, key, code, content)
        return content

    def put(self, key: str, data: bytes, content_type: str, cache_control: str) -> Deferred:
        headers = {"content-type": content_type, "cache-control": cache_control}
        if self.config.get("acl"):
            headers["x-amz-acl"] = self.config["acl"]
        return Deferred.fromCoroutine(self._request("PUT", key, data, headers))

    def delete(self, key: str) -> Deferred:
        return Deferred.fromCoroutine(self._request("DELETE", key))

    def create_bucket(self) -> Deferred:
        """Make the bucket (setup and tests; owncast never calls this itself)."""
        return Deferred.fromCoroutine(self._request("PUT", ""))
