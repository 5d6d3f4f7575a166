"""JSON in and out, errors, and auth: written once, used as decorators by every Klein app."""

from __future__ import annotations

import functools
import hmac
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from owncast.core.errors import ApiError
from owncast.core.throttle import parse_ip
from owncast.core.times import iso as iso  # re-exported: the apps format times with it

if TYPE_CHECKING:
    from owncast.api.context import AppContext

_log = Logger()

#: Largest request body accepted (an uploaded logo as a data: URI is the biggest).
MAX_BODY = 4 * 1024 * 1024


def read_json(request: Any) -> Any:
    """The request body as JSON; a 400 when it is missing, too big or malformed."""
    data = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(data) > MAX_BODY:
        raise ApiError(f"request body larger than {MAX_BODY} bytes", 413)
    if not data.strip():
        raise ApiError("request body must be JSON")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(f"request body is not valid JSON: {e}") from e
    except RecursionError as e:
        raise ApiError("request body is nested too deeply") from e


def body_object(request: Any, *required: str) -> dict:
    """A JSON object body holding every ``required`` field."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError("request body must be a JSON object")
    missing = [name for name in required if name not in body]
    if missing:
        raise ApiError(f"missing field: {', '.join(missing)}")
    return body


def config_value(request: Any) -> Any:
    """The ``value`` of a ``ConfigValue`` body."""
    return body_object(request, "value")["value"]


def ok(message: str) -> dict:
    return {"success": True, "message": message}


def viewer_key(ctx: Any, request: Any) -> str:
    """A viewer is a distinct address (behind a trusted proxy, the client it names) and
    user agent."""
    return viewer_key_of(auth_address(ctx, request), request.getHeader(b"user-agent"))


def viewer_key_of(address: str, agent: bytes | None) -> str:
    return f"{address} {(agent or b'').decode('latin-1')[:300]}"


def _client_address(request: Any) -> str:
    address = request.getClientAddress()
    return getattr(address, "host", None) or str(address)


def json_api(fn):
    """Serve ``fn``'s result as JSON; map ``ApiError`` and crashes to ``{success, message}``."""

    @functools.wraps(fn)
    async def wrapper(self, request, *args, **kwargs):
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        try:
            result = fn(self, request, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as e:
            request.setResponseCode(e.status)
            if e.status == 503:  # the shared store is unreachable for now
                request.setHeader(b"retry-after", b"5")
            result = {"success": False, "message": e.message}
        except Exception:
            _log.failure(
                "{method} {uri} failed",
                method=request.method.decode("ascii", "replace"),
                uri=request.uri.decode("ascii", "replace"),
            )
            request.setResponseCode(500)
            result = {"success": False, "message": "internal server error"}
        return json.dumps(result).encode("utf-8")

    return wrapper


class TooManyAttemptsError(ApiError):
    status = 429

    def __init__(self, wait: float):
        super().__init__(f"too many failed attempts; retry in {int(wait) + 1} s")
        self.wait = int(wait) + 1


class _UnauthenticatedError(ApiError):
    """401 with its ``WWW-Authenticate`` challenge. ``guess``: the request offered
    credentials, so it counts against its address (a browser's first, bare request and
    other schemes' credentials do not)."""

    status = 401

    def __init__(self, message: str, challenge: bytes, guess: bool):
        super().__init__(message)
        self.challenge = challenge
        self.guess = guess


def auth_address(ctx: Any, request: Any) -> str:
    """The client's address, which authentication attempts count against and viewers are
    told apart by: the peer, or the client a trusted reverse proxy (``--trustedproxy``)
    names in ``X-Forwarded-For``/``Forwarded``."""
    peer = _client_address(request)
    proxies = ctx.throttle.proxies
    if not proxies:
        return peer
    headers = request.requestHeaders
    forwarded_for = headers.getRawHeaders(b"x-forwarded-for")
    forwarded = headers.getRawHeaders(b"forwarded")
    return proxies.client(
        peer,
        b",".join(forwarded_for).decode("latin-1") if forwarded_for else None,
        b",".join(forwarded).decode("latin-1") if forwarded else None,
    )


@contextmanager
def _throttled(ctx: Any, request: Any) -> Iterator[None]:
    """One authentication attempt, throttled per address (``core.throttle``): refused
    (429, ``Retry-After``) while its address is penalized, credentials unchecked; an
    ``_UnauthenticatedError`` raised inside counts as a failure when it was a guess.
    Getting through clears nothing."""
    address = auth_address(ctx, request)
    wait = ctx.throttle.retry_after(address)
    if wait > 0:
        refused = TooManyAttemptsError(wait)
        request.setHeader(b"retry-after", str(refused.wait).encode())
        raise refused
    try:
        yield
    except _UnauthenticatedError as e:
        if e.guess:
            ctx.throttle.failed(address)
        request.setHeader(b"www-authenticate", e.challenge)
        raise


#: Methods that change nothing, so a cross-site one is harmless (its answer is unreadable).
_SAFE_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS"))
#: The content types an HTML form, or a cross-site fetch without a preflight, can send.
_FORM_TYPES = frozenset(
    (b"application/x-www-form-urlencoded", b"multipart/form-data", b"text/plain")
)


def _host_port(url: SplitResult, scheme: str) -> tuple[str | None, int]:
    """Host and port of ``url``, the port defaulting to ``scheme``'s; ValueError for a
    port that is not a number."""
    return url.hostname, url.port or (443 if scheme == "https" else 80)


def _own_origin(ctx: Any, request: Any, value: bytes) -> bool:
    """``value`` names this server: the host the browser asked for (``Host``, or a
    trusted proxy's ``X-Forwarded-Host``; the scheme is unknown behind a proxy that ends
    TLS, so the Origin's is assumed), or exactly the ``serverUrl`` setting's origin."""
    try:
        source = urlsplit(value.decode("latin-1").strip())
        if source.scheme not in ("http", "https") or not source.hostname:
            return False  # "null" (sandboxed frames, no-referrer), file:, extensions
        origin = _host_port(source, source.scheme)
        hosts = [request.getHeader(b"host") or b""]
        if ctx.throttle.proxies:
            peer = parse_ip(_client_address(request))
            if peer is not None and ctx.throttle.proxies.trusts(peer):
                hosts.append((request.getHeader(b"x-forwarded-host") or b"").split(b",")[0])
        for host in hosts:
            asked = urlsplit("//" + host.decode("latin-1").strip())
            if asked.hostname and _host_port(asked, source.scheme) == origin:
                return True
        server = urlsplit(ctx.settings["serverUrl"] or "")
        return server.scheme == source.scheme and _host_port(server, server.scheme) == origin
    except ValueError:  # a port that is not a number
        return False


def check_same_site(ctx: Any, request: Any, bearer: bool) -> None:
    """Refuse a state-changing request another site's page made the browser send (the
    admin's browser holds cached basic credentials). Browsers send ``Origin`` with every
    such request (``Referer`` where old ones do not); it must name this server. Requests
    with neither (curl, bots) pass. A body in a form's content type is refused unless the
    request carries a bearer token, which no form or simple request can."""
    if request.method in _SAFE_METHODS:
        return
    source = request.getHeader(b"origin")
    if source is None:
        source = request.getHeader(b"referer")
    if source is not None and not _own_origin(ctx, request, source):
        raise ApiError("cross-site request refused: its Origin is not this server", 403)
    if not bearer:
        kind = (request.getHeader(b"content-type") or b"").partition(b";")[0]
        if kind.strip().lower() in _FORM_TYPES:
            raise ApiError("send the body as JSON, with Content-Type: application/json", 415)


def check_admin(ctx: Any, request: Any) -> None:
    """Basic auth ``admin`` / stream key, compared in constant time, throttled per address;
    state-changing requests must come from this server's own pages."""
    check_same_site(ctx, request, bearer=False)
    with _throttled(ctx, request):
        user = request.getUser() or b""
        password = request.getPassword() or b""
        key = str(ctx.settings["streamKey"]).encode("utf-8")
        good_user = hmac.compare_digest(user, b"admin")
        good_password = hmac.compare_digest(password, key)
        if not (good_user and good_password and key):
            raise _UnauthenticatedError(
                "authentication required",
                b'Basic realm="Owncast", charset="UTF-8"',
                guess=request.getHeader(b"authorization") is not None,
            )


async def check_token(ctx: Any, request: Any, scope: str) -> dict:
    """Bearer token with ``scope``: 401 for a missing or unknown token, 403 without the scope
    (neither a success nor a failure for the throttle)."""
    check_same_site(ctx, request, bearer=True)
    with _throttled(ctx, request):
        header = (request.getHeader(b"authorization") or b"").decode("latin-1").strip()
        scheme, _, token = header.partition(" ")
        bearer = scheme.lower() == "bearer" and token.strip()
        record = ctx.tokens.lookup(bearer) if bearer else None
        if record is None and bearer and ctx.tokens.may_refresh(ctx.now()):
            # Another node sharing our store may have just created it.
            await ctx.tokens.refresh(ctx.now())
            record = ctx.tokens.lookup(bearer)
        if record is None:
            raise _UnauthenticatedError(
                "a valid access token is required", b'Bearer realm="Owncast"', guess=bool(bearer)
            )
    if scope not in record["scopes"]:
        raise ApiError(f"this access token lacks the {scope} scope", 403)
    ctx.tokens.touch(record, ctx.now())
    return record


def admin(fn):
    """Require admin basic auth before ``fn`` runs; use under ``json_api``."""

    @functools.wraps(fn)
    def wrapper(self, request, *args, **kwargs):
        check_admin(self.ctx, request)
        return fn(self, request, *args, **kwargs)

    return wrapper


def token(scope: str):
    """Require a bearer token with ``scope`` before ``fn`` runs; use under ``json_api``."""

    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper(self, request, *args, **kwargs):
            await check_token(self.ctx, request, scope)
            result = fn(self, request, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return wrapper

    return decorate


class JsonApp:
    """What every API class shares: the context its routes (and ``admin``/``token``) read.
    A subclass sets ``app = json_app()`` and routes on it: one Klein app per class."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx


def json_app() -> Klein:
    """A Klein app whose routing failures answer as JSON, like every other error."""
    app = Klein()
    # Klein hands an instance's handler the instance first; routing_error has no use for it.
    app.handle_errors(HTTPException)(lambda _api, request, failure: routing_error(request, failure))
    return app


def routing_error(request: Any, failure: Any) -> bytes:
    """Klein's routing failures (unknown path, wrong method) as JSON, like every other error."""
    error = failure.value
    status = getattr(error, "code", None) or 500
    message = getattr(error, "description", None) or "internal server error"
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    allowed = getattr(error, "valid_methods", None)
    if status == 405 and allowed:
        request.setHeader(b"allow", ", ".join(sorted(allowed)).encode("ascii"))
    return json.dumps({"success": False, "message": message}).encode("utf-8")
