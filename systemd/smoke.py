"""``make systemd-smoke``: the systemd install, staged, and the daemon started from it as
systemd starts it.

``systemd/install.sh`` runs with ``DESTDIR`` set to a temporary folder, so it makes a
virtualenv of the system Python there, installs the wheel into it and writes the config
file and the unit, touching nothing of the machine's. Then, as ``Type=notify`` with
``WatchdogSec=`` would: the staged ``twistd`` starts from the staged config (with the
data directory and ports moved to the temporary folder on the command line), with
``NOTIFY_SOCKET`` naming a datagram socket this script reads and ``WATCHDOG_USEC`` set.
It must send ``READY=1`` only when its probes answer, ping the watchdog, serve
``/metrics`` to the admin only, and send ``STOPPING=1`` and exit 0 on SIGTERM. The
staged unit must pass ``systemd-analyze verify``.

Standard library only, like ``tests/wheel_smoke.py``, and for the same reason: it runs
once, in order, against processes it starts itself.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "systemd-smoke-key"
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, auth: bool = False) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{KEY}".encode()).decode()
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def receive(sock: socket.socket, wanted: str, process: subprocess.Popen, seen: list) -> None:
    """Read datagrams into ``seen`` until one carries ``wanted`` (``READY``...)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited ({process.returncode}) before {wanted}")
        sock.settimeout(0.5)
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(data)
        if any(line.startswith(wanted + "=") for line in data.split("\n")):
            return
    raise SystemExit(f"no {wanted} within {TIMEOUT} s; got {seen}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"systemd-smoke: FAILED: {what}")
    print(f"systemd-smoke: ok: {what}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("wheel")
    parser.add_argument("--python", default="/usr/bin/python3")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="owncast-systemd-smoke-"))
    try:
        run(Path(args.wheel).resolve(), args.python, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(wheel: Path, python: str, work: Path) -> None:
    stage = work / "root"
    env = dict(os.environ, DESTDIR=str(stage), SYSTEM_PYTHON=python, PREFIX="/opt/owncast")
    subprocess.run(["sh", str(HERE / "install.sh"), str(wheel)], env=env, check=True)
    venv = stage / "opt/owncast/venv"
    interpreter = os.path.realpath(venv / "bin/python")
    check(
        not interpreter.startswith(("/home/", "/root/", "/run/user/")),
        f"the service's Python ({interpreter}) is outside every home directory",
    )
    check((stage / "etc/owncast/owncast.ini").is_file(), "the config file is in /etc/owncast")

    unit = (stage / "etc/systemd/system/owncast.service").read_text()
    checkable = work / "owncast.service"
    checkable.write_text(unit.replace("/opt/owncast/venv", str(venv)))
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd-analyze is installed")
    verified = subprocess.run(
        [str(analyze), "verify", str(checkable)], capture_output=True, text=True
    )
    check(verified.returncode == 0 and not verified.stderr.strip(), "systemd-analyze verify")

    notify_path = str(work / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    web, rtmp = free_port(), free_port()
    argv = [
        str(venv / "bin/twistd"), "--nodaemon", "--pidfile=", "owncast",
        "--config", str(stage / "etc/owncast/owncast.ini"),
        "--datadir", str(work / "data"), "--webserverport", str(web),
        "--rtmpport", str(rtmp), "--streamkey", KEY,
    ]  # fmt: skip
    daemon_env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(argv, cwd=work, env=daemon_env, stdout=log, stderr=log)
    seen: list[str] = []
    try:
        receive(sock, "READY", process, seen)
        check(get(web, "/readyz")[0] == 200, "READY=1 came once /readyz says 200")
        check(get(web, "/healthz")[0] == 200, "/healthz says 200")
        check(get(web, "/metrics")[0] == 401, "/metrics refuses a stranger")
        code, body = get(web, "/metrics", auth=True)
        check(code == 200 and b"owncast_viewers " in body, "/metrics answers the admin")
        for _ in range(2):
            receive(sock, "WATCHDOG", process, seen)
        check(True, "the watchdog is pinged")
        process.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING", process, seen)
        # twistd ends by the signal it got, once shut down: a clean stop for systemd.
        code = process.wait(TIMEOUT)
        check(code == -signal.SIGTERM, f"STOPPING=1 on SIGTERM, then a clean exit ({code})")
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        sys.stderr.write((work / "daemon.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        sock.close()
    log.close()


if __name__ == "__main__":
    main()
