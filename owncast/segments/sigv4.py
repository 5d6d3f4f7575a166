"""AWS Signature Version 4 for S3 requests: a pure function of the request and the keys.

Only what S3 needs: the path is encoded once (S3 does not double-encode), the payload is
always hashed (``x-amz-content-sha256``), no query string beyond what the caller gives.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def amz_date(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def canonical_path(path: str) -> str:
    """Each segment of ``path`` percent-encoded (RFC 3986 unreserved characters kept)."""
    return quote(path, safe="/~")


def sign(
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    payload_sha256: str,
    access_key: str,
    secret: str,
    region: str,
    when: float,
    query: str = "",
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send: ``headers`` plus ``host``, ``x-amz-date``,
    ``x-amz-content-sha256`` and ``authorization``. Header names come back lower-case;
    ``query`` must already be canonical (sorted, encoded)."""
    stamp = amz_date(when)
    day = stamp[:8]
    signed = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_sha256})
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            canonical_path(path),
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = _hmac(("AWS4" + secret).encode("utf-8"), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope},"
        f"SignedHeaders={';'.join(names)},Signature={signature}"
    )
    return signed
