"""What schemathesis does to each request of ``tests.test_schemathesis`` before sending it.

* The daemon trusts 127.0.0.1 as a reverse proxy (``--trustedproxy``), and each request
  names a client address of its own in ``X-Forwarded-For``: the many wrong credentials
  schemathesis sends on purpose are throttled per client, so none is ever locked out.
  The throttle is relaxed for this daemon only, through the option proxies use.
* Nothing leaves the machine: a webhook or S3 endpoint that schemathesis made up is
  pointed at a closed loopback port (the daemon runs with ``--allowprivate``).
* The admin password is the stream key: a valid new key is replaced by the current one,
  so the run keeps its credentials; the run's access token is never deleted.

Each rewrite keeps a value valid where it was valid, so positive and negative cases stay
what they were.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import schemathesis

#: A closed port on loopback: webhooks made up by schemathesis go nowhere.
NOWHERE = "http://127.0.0.1:9/"
_URL = re.compile(r"^\s*https?://\S")


_requests = itertools.count()


def _address() -> str:
    """A client address of its own for each request, from the benchmarking range
    198.18.0.0/15 (a counter: schemathesis seeds ``random`` again for each case)."""
    n = next(_requests) % (1 << 17)
    return f"198.{18 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    case.headers = dict(case.headers or {})
    case.headers["X-Forwarded-For"] = _address()
    body = case.body
    if not isinstance(body, dict):
        return
    path = case.path
    if path == "/api/admin/config/key" and isinstance(body.get("value"), str):
        value = body["value"]
        if value and len(value) <= 256 and not any(c.isspace() or c in "/?#" for c in value):
            body["value"] = os.environ["OWNCAST_KEY"]
    elif path == "/api/admin/accesstokens/delete" and body.get("token") == os.environ.get(
        "OWNCAST_TOKEN"
    ):
        body["token"] = "not-" + body["token"]  # the run's own token stays
    elif path == "/api/admin/webhooks/create" and isinstance(body.get("url"), str):
        if _URL.match(body["url"]):
            body["url"] = NOWHERE
    elif path in ("/api/admin/config/s3", "/api/admin/config/s3/test") and isinstance(
        body.get("value"), dict
    ):
        for field in ("endpoint", "servingEndpoint"):
            value = body["value"].get(field)
            if isinstance(value, str) and _URL.match(value):
                body["value"][field] = NOWHERE.rstrip("/")
