"""The load generator of the chat benchmark: N websocket listeners and one sender, in one
process on one epoll loop, able to take 100 000+ deliveries a second on one core.

    python -m bench.chat_load PORT CLIENTS (--http-token TOKEN | --ws-send PATH)
                              [--rate 20] [--seconds 10] [--sample 4] [--senders 4]
                              [--idle]

Listeners connect to ``ws://127.0.0.1:PORT/entry`` without an ``Origin`` header, each
socket bound to a loopback source address of its own group of ``PER_IP`` (127.100.0.1,
127.100.0.2, ...: all of 127/8 is loopback on Linux), so a per-address cap of ``PER_IP``
admits them all. The handshake is written and checked by hand; after it a listener only
reads: frame headers are parsed, and in each text frame the marker ``bench!SEQ!TS!`` is
found with ``bytes.find`` (no JSON decoding).

The sender posts ``rate`` messages a second for ``seconds``, open loop (on time, whether
or not earlier ones were answered), each body ``bench!SEQ!TS!`` where ``TS`` is
``time.time()`` just before the request is written:

* ``--http-token``: ``POST /api/integrations/chat/system`` with that bearer token, on
  keep-alive HTTP connections from 127.0.0.1 (owncast-py);
* ``--ws-send PATH``: one masked text frame per message on a websocket at PATH, a JSON
  object shaped and sized like owncast-py's SYSTEM message (the reference server);

either way round robin over ``--senders`` connections (4: as several chatters or
integrations would; a single connection would queue each message behind the previous
one's fan-out, since Twisted answers pipelined requests one at a time).

Timing. Every read asks the kernel for the time the data arrived (``SO_TIMESTAMPNS``,
the wall clock, the same clock as TS): latency = that time - TS, read from the message
itself. It does not depend on when this process gets round to the socket, so batching
wake-ups (at most one per ``POLL_INTERVAL``) costs no accuracy. A read's time is that of
the last byte it returned; every message in it is timed with it, which is exact for
messages the server wrote together (one segment) and otherwise an upper bound, off by at
most the few ms a timed listener's data waits for its read.

Every delivery is counted (loss = expected - received). Reading every listener at every
message costs about 14 us a delivery here, two thirds of it in the kernel (the TCP
receive, and the ACK each read sends back over loopback): too much for 100 000 a second.
So only listeners ``i % sample == 0`` (every ``sample``-th in connection order, which is
the server's fan-out order: a sample spread evenly over it) are timed, watched by epoll
and read whenever they have data; the others are only counted, not in epoll at all, and
read at the start of each message interval ``tick`` where ``(i + tick) % sample == 0``,
several messages a read. ``--sample 1`` reads and times every delivery (the generator
then tops out near 70 000 a second when the server writes each message on its own). The
cost of fewer reads: listeners that do not read at once leave their ACK to the
delayed-ACK timer, which fires on the server's core (see bench/README.md).

Talks to its parent over stdio: prints one JSON line ``{"event": "connected", ...}`` when
every listener is open (or has failed), waits for a line ``go`` on stdin, runs the load,
prints ``{"event": "done"}`` as soon as the last delivery is in (so the parent can read
CPU counters over exactly the load), then the results as one JSON line, and exits when
stdin closes. With ``--idle`` it only connects, reports and holds the sockets until stdin
closes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import hashlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from array import array
from typing import Any

PER_IP = 20
#: Handshakes in flight at once: below any listen backlog a server is likely to have
#: (Twisted's default is 50), so no SYN is dropped (a dropped SYN costs a 1 s retransmit).
CONCURRENCY = 40
MARK = b"bench!"
WS_KEY = base64.b64encode(b"chat-bench-key!!").decode()
WS_ACCEPT = base64.b64encode(
    hashlib.sha1((WS_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: After the last send: stop when every expected receipt is in, or after this long with
#: no receipt at all, or at the latest DRAIN_MAX seconds after the last send.
DRAIN_QUIET = 2.0
DRAIN_MAX = 30.0
#: Bytes read from a listener at once (a frame left incomplete is kept for the next read;
#: frames here are a few hundred bytes).
RECV_BUFFER = 1 << 18
#: Kernel receive timestamps (struct timespec, CLOCK_REALTIME) on every read; Python 3.11's
#: socket module does not name the option (asm-generic value, as on x86-64 and arm64).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
#: At most one epoll wake-up with receipts per this many seconds (a message every 50 ms
#: a listener, so reads stay one message each; see ``coalesced_reads``).
POLL_INTERVAL = 0.002
#: Time every SAMPLE-th listener (read at once); read the others every SAMPLE ticks.
SAMPLE = 4
#: Sender connections, used in turn: a message every 200 ms on each at 20 msg/s.
SENDERS = 4
#: Once everything is sent, a poll this long without events reads every listener.
SWEEP_AFTER = 0.1


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def source_address(i: int) -> str:
    group = i // PER_IP
    return f"127.100.{group // 250}.{group % 250 + 1}"


def handshake_request(port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
        f"Sec-WebSocket-Version: 13\r\nUser-Agent: owncast-py chat bench\r\n\r\n"
    ).encode()


def check_handshake(head: bytes) -> str | None:
    """Why the handshake response ``head`` is not a good 101, or None."""
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 101"):
        return status.decode("latin-1")
    if WS_ACCEPT not in head:
        return "bad Sec-WebSocket-Accept"
    return None


# -- senders ---------------------------------------------------------------------------


class HttpSender:
    """POST /api/integrations/chat/system, round robin over ``SENDERS`` keep-alive
    connections (as several integrations or chatters would; on one connection Twisted
    answers pipelined requests strictly one after the other)."""

    def __init__(self, port: int, token: str, connections: int):
        self.port = port
        self.token = token.encode()
        self.socks = [
            socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)
        ]
        for sock in self.socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.received = bytearray()

    def send(self, seq: int) -> float:
        ts = time.time()
        payload = b'{"body": "bench!%d!%.6f!"}' % (seq, ts)
        self.socks[seq % len(self.socks)].sendall(
            b"POST /api/integrations/chat/system HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (self.port, self.token, len(payload), payload)
        )
        return ts

    def readable(self, sock: socket.socket) -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed a sender's HTTP connection")
        self.received += data

    def summary(self) -> dict:
        statuses: dict[str, int] = {}
        for line in bytes(self.received).split(b"\r\n"):
            if line.startswith(b"HTTP/1.1 "):
                code = line[9:12].decode("latin-1")
                statuses[code] = statuses.get(code, 0) + 1
        return {"http_status": statuses}


class WsSender:
    """Masked text frames, round robin over ``connections`` websockets at ``path`` (the
    reference server's ``/send``)."""

    def __init__(self, port: int, path: str, connections: int):
        self.socks = []
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(handshake_request(port, path))
            head = b""
            while b"\r\n\r\n" not in head:
                more = sock.recv(4096)
                if not more:
                    raise ConnectionError("the server closed the sender's handshake")
                head += more
            why = check_handshake(head)
            if why:
                raise ConnectionError(f"sender handshake refused: {why}")
            self.socks.append(sock)

    def send(self, seq: int) -> float:
        ts = time.time()
        payload = (
            b'{"id": "bnch0123456x", "type": "SYSTEM", "author": "Owncast", '
            b'"body": "bench!%d!%.6f!", "visible": true, '
            b'"timestamp": "2026-01-01T00:00:00.000000Z"}' % (seq, ts)
        )
        mask = os.urandom(4)
        n = len(payload)
        header = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
        self.socks[seq % len(self.socks)].sendall(header + mask + masked)
        return ts

    def readable(self, sock: socket.socket) -> None:
        if not sock.recv(65536):
            raise ConnectionError("the reference server closed a sender's websocket")

    def summary(self) -> dict:
        return {}


# -- listeners -------------------------------------------------------------------------


class Generator:
    def __init__(self, port: int, clients: int):
        self.port = port
        self.clients = clients
        self.ep = select.epoll()
        self.socks: dict[int, socket.socket] = {}  # fd -> open listener
        self.index: dict[int, int] = {}  # fd -> listener number, in order of opening
        self.pending: dict[int, bytes] = {}  # fd -> bytes of an incomplete frame
        self.failures: dict[str, int] = {}
        self.closed = 0

    def _fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    def connect_all(self, timeout: float) -> None:
        """Open every listener, CONCURRENCY handshakes at a time."""
        request = handshake_request(self.port, "/entry")
        ep = self.ep
        connecting: dict[int, list[Any]] = {}  # fd -> [sock, response so far or None]
        started = done = 0
        deadline = time.monotonic() + timeout
        while done < self.clients:
            while len(connecting) < CONCURRENCY and started < self.clients:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((source_address(started), 0))
                started += 1
                err = s.connect_ex(("127.0.0.1", self.port))
                if err not in (0, errno.EINPROGRESS):
                    self._fail(f"connect: {os.strerror(err)}")
                    s.close()
                    done += 1
                    continue
                connecting[s.fileno()] = [s, None]
                ep.register(s.fileno(), select.EPOLLOUT)
            if time.monotonic() > deadline:
                for s, _ in connecting.values():
                    ep.unregister(s.fileno())
                    s.close()
                self._fail("connect timeout")
                return
            for fd, _ev in ep.poll(0.5):
                entry = connecting[fd]
                s = entry[0]
                if entry[1] is None:  # the TCP connect finished
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        why = f"connect: {os.strerror(err)}"
                    else:
                        s.send(request)
                        entry[1] = b""
                        ep.modify(fd, select.EPOLLIN)
                        continue
                else:
                    try:
                        data = s.recv(4096)
                    except OSError as e:
                        data, why = b"", f"handshake: {e}"
                    else:
                        why = "closed during the handshake"
                    if data:
                        entry[1] += data
                        head, sep, rest = entry[1].partition(b"\r\n\r\n")
                        if not sep:
                            continue
                        why = check_handshake(head)
                        if why is None:
                            del connecting[fd]
                            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                            # Edge-triggered: no re-check of a drained socket each poll.
                            ep.modify(fd, select.EPOLLIN | select.EPOLLET)
                            self.index[fd] = len(self.socks)
                            self.socks[fd] = s
                            if rest:
                                self.pending[fd] = rest
                            done += 1
                            continue
                del connecting[fd]
                ep.unregister(fd)
                s.close()
                self._fail(why)
                done += 1

    def run_load(self, sender: Any, messages: int, rate: float, sample: int) -> dict:
        """Send ``messages`` at ``rate``/s; count every delivery, time one in ``sample``."""
        ep = self.ep
        senders = {sock.fileno(): sock for sock in sender.socks}
        for fd, sock in senders.items():
            sock.setblocking(True)
            ep.register(fd, select.EPOLLIN)
        socks = self.socks
        index = self.index
        pending = self.pending
        mark = MARK
        monotonic = time.monotonic
        poll = ep.poll
        maxevents = len(socks) + 16
        unpack_ts = TIMESPEC.unpack
        latencies = array("d")
        add_latency = latencies.append
        counts = [0] * messages
        stamps: list[float] = [0.0] * messages  # TS of each message, read from its body
        data = bytearray(RECV_BUFFER)
        view = memoryview(data)
        whole = [view]
        open_at_start = len(socks)
        expected = messages * open_at_start
        received = sent = 0
        polls = ready = 0  # epoll wake-ups with events, and the events they returned
        reads = coalesced = untimed = frame_bytes = 0
        first_send = last_send = 0.0  # wall clock (time.time)
        newest = 0.0  # latest kernel receive time of a message (wall clock)

        def take(fd: int, s: socket.socket, timed: bool) -> int:
            """Read what listener ``fd`` has; count its messages and, when ``timed``, time
            each against the kernel's time of the read (that of the last byte read)."""
            nonlocal reads, coalesced, untimed, frame_bytes, newest
            head = pending.pop(fd, None) if pending else None
            start_at = 0 if head is None else len(head)
            try:
                if head is None:
                    got, ancillary, _flags, _addr = s.recvmsg_into(whole, 64)
                else:
                    data[:start_at] = head
                    got, ancillary, _flags, _addr = s.recvmsg_into([view[start_at:]], 64)
            except BlockingIOError:
                if head is not None:
                    pending[fd] = head
                return 0
            except OSError:
                got = 0
            if not got:
                self._drop(fd, s)
                return 0
            end_all = start_at + got
            if end_all == RECV_BUFFER:  # edge-triggered: it must be drained in one read
                raise RuntimeError("a listener had more than the receive buffer waiting")
            reads += 1
            if ancillary:
                sec, nsec = unpack_ts(ancillary[0][2])
                arrived = sec + nsec * 1e-9
            else:  # no kernel time (not seen on Linux): now is an upper bound
                arrived = time.time()
                untimed += 1
            found = pos = 0
            while end_all - pos >= 2:
                length = data[pos + 1] & 0x7F
                if length < 126:
                    body = pos + 2
                elif length == 126:
                    if end_all - pos < 4:
                        break
                    length = data[pos + 2] << 8 | data[pos + 3]
                    body = pos + 4
                else:
                    if end_all - pos < 10:
                        break
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                    body = pos + 10
                end = body + length
                if end > end_all:
                    break
                opcode = data[pos] & 0x0F
                if opcode == 1:
                    i = data.find(mark, body, end)
                    if i >= 0:
                        i += 6
                        k = data.find(b"!", i, end)
                        seq = int(data[i:k])
                        if not counts[seq]:  # its first copy: read its TS
                            stamps[seq] = float(data[k + 1 : data.find(b"!", k + 1, end)])
                        counts[seq] += 1
                        found += 1
                        frame_bytes += end - pos
                        if timed:
                            add_latency(arrived - stamps[seq])
                elif opcode == 8:
                    self.closed += 1
                pos = end
            if pos < end_all:
                pending[fd] = bytes(data[pos:end_all])
            if found:
                if arrived > newest:
                    newest = arrived
                if found > 1:
                    coalesced += 1
            return found

        # Only the timed listeners stay in epoll; the others are read on a schedule, group
        # i % sample at the ticks where (i + tick) % sample == 0.
        groups: list[list[int]] = [[] for _ in range(sample)]
        for fd in socks:
            if index[fd] % sample:
                groups[index[fd] % sample].append(fd)
                ep.unregister(fd)
        last_tick = -1
        start = monotonic() + 0.05
        sent_at = last_seen = start  # monotonic: of the last send, of the last receipt
        next_poll = start
        times0 = os.times()
        while True:
            now = monotonic()
            while sent < messages and now >= start + sent / rate:
                ts = sender.send(sent)
                if sent == 0:
                    first_send = ts
                last_send = ts
                sent += 1
                now = sent_at = monotonic()
            # Listeners i % sample == 0 are timed: read at every wake-up they have data.
            # The others are only counted, read at the start of each tick where
            # (i + tick) % sample == 0.
            tick = int((now - start) * rate)
            while last_tick < tick:
                last_tick += 1
                got = 0
                for fd in groups[-last_tick % sample]:  # group 0, the timed one, is empty
                    s = socks.get(fd)
                    if s is not None:
                        got += take(fd, s, False)
                if got:
                    received += got
                    last_seen = monotonic()
            if sent < messages:
                timeout = start + sent / rate - now
            else:
                if received >= expected:
                    break
                if now - last_seen > DRAIN_QUIET and now - sent_at > DRAIN_QUIET:
                    break
                if now - sent_at > DRAIN_MAX:
                    break
                timeout = SWEEP_AFTER
            if now < next_poll:
                # Let receipts gather: one wake-up per batch rather than per few sockets.
                # Receipts are timed by the kernel, so waiting here does not add to them.
                time.sleep(min(next_poll - now, timeout) if timeout > 0 else 0)
                continue
            events = poll(timeout if timeout > 0 else 0, maxevents)
            if not events:
                if sent == messages:  # all sent and a quiet moment: read everything left
                    got = 0
                    for fd, s in list(socks.items()):
                        got += take(fd, s, index[fd] % sample == 0)
                    if got:
                        received += got
                        last_seen = monotonic()
                continue
            next_poll = monotonic() + POLL_INTERVAL
            polls += 1
            ready += len(events)
            batch = 0
            for fd, _ev in events:
                i = index.get(fd)
                if i is None:
                    if fd in senders:
                        sender.readable(senders[fd])
                    continue
                s = socks.get(fd)
                if s is not None:
                    batch += take(fd, s, True)
            if batch:
                received += batch
                last_seen = monotonic()
        times1 = os.times()
        emit({"event": "done"})

        ordered = sorted(latencies)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        expected = sent * open_at_start
        span = newest - first_send + 1 / rate
        out = {
            "event": "result",
            "clients": self.clients,
            "open_at_start": open_at_start,
            "open_at_end": len(socks),
            "closed": self.closed,
            "messages": sent,
            "send_seconds": last_send - first_send,
            "expected": expected,
            "received": received,
            "loss": (expected - received) / expected if expected else None,
            "messages_complete": sum(1 for c in counts if c >= open_at_start),
            "deliveries_per_s": received / span if received and span > 0 else None,
            "sample": sample,
            "timed": len(ordered),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": ordered[-1] * 1000 if ordered else None,
            "mean_frame_bytes": frame_bytes / received if received else None,
            "generator_user_s": times1.user - times0.user,
            "generator_system_s": times1.system - times0.system,
            "wakeups": polls,
            "events_per_wakeup": ready / polls if polls else None,
            "reads": reads,
            "messages_per_read": received / reads if reads else None,
            "coalesced_reads": coalesced,
            "untimed_reads": untimed,
            "window_s": (newest if received else time.time()) - first_send,
        }
        out.update(sender.summary())
        return out

    def _drop(self, fd: int, s: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):  # not registered if not timed
            self.ep.unregister(fd)
        del self.socks[fd]
        self.pending.pop(fd, None)
        s.close()
        self.closed += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_load")
    parser.add_argument("port", type=int)
    parser.add_argument("clients", type=int)
    parser.add_argument("--http-token", help="send via POST /api/integrations/chat/system")
    parser.add_argument("--ws-send", help="send text frames on a websocket at this path")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", action="store_true", help="connect, report, hold")
    parser.add_argument(
        "--sample",
        type=int,
        default=SAMPLE,
        help="time one delivery in this many (every one is counted)",
    )
    parser.add_argument(
        "--senders", type=int, default=SENDERS, help="sender connections, used round robin"
    )
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    raise_nofile(args.clients + 256)

    gen = Generator(args.port, args.clients)
    started = time.monotonic()
    gen.connect_all(args.connect_timeout)
    emit(
        {
            "event": "connected",
            "open": len(gen.socks),
            "failures": gen.failures,
            "seconds": time.monotonic() - started,
        }
    )
    command = sys.stdin.readline().strip()
    if command == "go" and not args.idle:
        if args.http_token:
            sender: Any = HttpSender(args.port, args.http_token, args.senders)
        elif args.ws_send:
            sender = WsSender(args.port, args.ws_send, args.senders)
        else:
            parser.error("one of --http-token and --ws-send is needed")
        messages = int(round(args.rate * args.seconds))
        emit(gen.run_load(sender, messages, args.rate, args.sample))
        sys.stdin.readline()  # hold the sockets until the parent is done reading counters
    return 0


if __name__ == "__main__":
    sys.exit(main())
