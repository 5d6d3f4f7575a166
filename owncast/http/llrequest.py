"""What a plain ``GET /hls/<name>`` asks of the LL-HLS renditions, read from its bytes
once per distinct name (thousands of viewers ask the same ones): the fast path
(``owncast.http.llfast``) answers or holds what this reads, and leaves to twisted.web
whatever it does not (an error, an odd query), so that twisted.web's answer is the one
given."""

from __future__ import annotations

from typing import Any

from owncast.http.llhls import media_match

_ARGS = frozenset((b"_HLS_msn", b"_HLS_part", b"_HLS_skip"))
MASTER, PLAYLIST, INIT, SEGMENT, PART = range(5)

#: ``(kind, rendition, a, b, skip)``
Plan = tuple[int, int, Any, Any, bool]


def plan_of(name: bytes) -> Plan | None:
    """What ``GET /hls/<name>`` asks for, read once per distinct name: ``(kind, rendition,
    a, b, skip)`` (a playlist's ``_HLS_msn`` and ``_HLS_part``, an init, segment or part
    number in ``a``); None for what twisted.web should answer (an error, an odd query)."""
    path, _, query = name.partition(b"?")
    if path == b"stream.m3u8":
        return None if query else (MASTER, 0, None, None, False)
    n_text, slash, file = path.partition(b"/")
    if not slash or not n_text.isdigit() or len(n_text) > 6:
        return None
    match = media_match(file)
    if match is None:
        return None
    n = int(n_text)
    if match.group(1) == b"stream.m3u8":
        args = _query(query)
        if args is None:
            return None
        msn_text, part_text = args.get(b"_HLS_msn"), args.get(b"_HLS_part")
        if msn_text is None and part_text is not None:
            return None
        try:
            msn, part = _number(msn_text), _number(part_text)
        except ValueError:
            return None
        return PLAYLIST, n, msn, part, args.get(b"_HLS_skip") in (b"YES", b"v2")
    if query:
        return None
    if match.group(2) is not None:
        return INIT, n, int(match.group(2) or 0), None, False
    if match.group(3) is not None:
        return SEGMENT, n, int(match.group(3)), None, False
    return PART, n, int(match.group(4)), None, False


def blocking(plan: Plan) -> bool:
    """Whether a plan is a blocking playlist reload (``_HLS_msn`` given)."""
    return plan[0] == PLAYLIST and plan[2] is not None


def _query(query: bytes) -> dict[bytes, bytes] | None:
    """The LL-HLS arguments of a plain query (each once, plain letters and digits); None
    for anything twisted.web should read itself."""
    args: dict[bytes, bytes] = {}
    if not query:
        return args
    for item in query.split(b"&"):
        key, eq, value = item.partition(b"=")
        if not eq or key not in _ARGS or key in args or not value.isalnum():
            return None
        args[key] = value
    return args


def _number(text: bytes | None) -> int | None:
    """The value of ``_HLS_msn``/``_HLS_part``; ValueError where twisted.web says 400."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise ValueError(text)
    return int(text)
