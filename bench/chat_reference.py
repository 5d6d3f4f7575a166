"""The reference chat server for the chat benchmark: a minimal broadcast server on
Python ``websockets`` (its asyncio implementation, plain asyncio event loop).

Every websocket at ``/entry`` is a listener; every text message that arrives on a
websocket at ``/send`` is passed, as it is, to ``websockets.broadcast`` for all listeners.
No JSON, no storage, no per-client logic: what a trivial fan-out costs in pure Python.

    python -m bench.chat_reference PORT
"""

from __future__ import annotations

import asyncio
import resource
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

LISTENERS: set[ServerConnection] = set()


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def handler(websocket: ServerConnection) -> None:
    if websocket.request is not None and websocket.request.path == "/send":
        async for message in websocket:
            broadcast(LISTENERS, message)
        return
    LISTENERS.add(websocket)
    try:
        await websocket.wait_closed()
    finally:
        LISTENERS.discard(websocket)


async def main(port: int) -> None:
    # No keepalive pings (ours sends an application PING every 30 s, which needs no
    # answer; the load generator answers no control frames), no compression (the
    # generator offers none anyway).
    async with serve(
        handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=1024
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    raise_nofile()
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
