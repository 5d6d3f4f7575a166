"""Install the built wheel into a fresh virtualenv outside the checkout and run the daemon from it.

``make wheel-smoke`` (part of ``make test``) runs ``python3 tests/wheel_smoke.py dist/*.whl``.
The unit tests run from the checkout, so they cannot see what the wheel leaves out; this does:
a package missing from the wheel, the web assets or the OpenAPI document not shipped, the
Twisted plugin not found, a run-time dependency that is only a test extra. Standard library
only, so it needs nothing installed; a plain script rather than a trial test, because it runs
once, in order, against processes it starts itself.

Steps: check the wheel's file list; create a virtualenv in a temporary folder; pip-install the
wheel (dependencies from the configured index, pip's cache reused); import every owncast module
there; start ``twistd --nodaemon --pidfile= owncast`` from it, from inside the temporary folder,
on free ports with a temporary datadir and a known stream key; check that the viewer page, the
admin page (with the key), the API and the HLS playlist answer; stop it with SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
STREAM_KEY = "wheel-smoke-key"

#: Files the daemon cannot run without.
REQUIRED = (
    "owncast/tap.py",
    "owncast/http/webroot.py",
    "owncast/api/openapi.yaml",
    "owncast/web/index.html",
    "owncast/web/admin/index.html",
    "owncast/web/vendor/hls.min.js",
    "twisted/plugins/owncast_plugin.py",
)
#: The only file the wheel may put into Twisted's own package: an ``__init__.py`` there
#: would replace Twisted's, a ``dropin.cache`` would hide plugins installed later.
TWISTED_FILES = {"twisted/plugins/owncast_plugin.py"}

#: Imports every owncast module in the installed copy; prints where owncast and the web root are.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import owncast
failed = []
for module in pkgutil.walk_packages(owncast.__path__, "owncast.", onerror=failed.append):
    try:
        importlib.import_module(module.name)
    except Exception as e:
        failed.append(f"{module.name}: {e!r}")
from owncast.http.webroot import WEB_ROOT
print(json.dumps({"owncast": owncast.__file__, "webroot": str(WEB_ROOT), "failed": failed}))
"""


class SmokeError(Exception):
    """The wheel failed a check; the message says which."""


def step(message: str) -> None:
    print(f"wheel-smoke: {message}", flush=True)


def check_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in REQUIRED if name not in names]
    stray = sorted(n for n in names if n.startswith("twisted/") and n not in TWISTED_FILES)
    if missing or stray:
        raise SmokeError(f"wheel contents: missing {missing}, must not ship {stray}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that could point Python at the checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SmokeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def install(wheel: Path, tmp: Path, env: dict[str, str]) -> Path:
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], tmp, env)
    where = json.loads(run([str(python), "-c", IMPORT_ALL], tmp, env))
    if where["failed"]:
        raise SmokeError(f"modules that do not import from the wheel: {where['failed']}")
    for what in ("owncast", "webroot"):
        if not Path(where[what]).is_relative_to(venv):
            raise SmokeError(f"{what} found at {where[what]}, outside the virtualenv")
    return venv


def get(port: int, path: str, auth: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeError(f"twistd exited {process.returncode} before answering:\n{tail(log)}")
        try:
            if get(port, "/api/status")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SmokeError(f"no answer on /api/status after {START_TIMEOUT:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def check_answers(port: int) -> list[str]:
    """Every failed expectation, as a sentence; prints what each URL answered."""
    admin = f"admin:{STREAM_KEY}"
    expected = [
        ("/", None, 200),
        ("/vendor/hls.min.js", None, 200),
        ("/admin/", None, 401),
        ("/admin/", admin, 200),
        ("/api/status", None, 200),
        ("/api/openapi.yaml", None, 200),
        ("/hls/stream.m3u8", None, None),  # offline: anything but a server error
    ]
    failures = []
    for path, auth, want in expected:
        try:
            status, body = get(port, path, auth)
        except OSError as e:
            failures.append(f"GET {path}: {e!r}")
            continue
        step(f"GET {path}{' (admin)' if auth else ''} -> {status}, {len(body)} bytes")
        if status != want and (want is not None or status >= 500):
            failures.append(f"GET {path}: {status}, expected {want or 'no 5xx'}")
        if path == "/api/openapi.yaml" and not body.startswith(b"openapi:"):
            failures.append("GET /api/openapi.yaml: not the OpenAPI document")
    return failures


def serve(venv: Path, tmp: Path, env: dict[str, str]) -> None:
    web, rtmp = free_port(), free_port()
    log = tmp / "twistd.log"
    argv = [str(venv / "bin" / "twistd"), "--nodaemon", "--pidfile=", "owncast"]
    argv += ["--datadir", str(tmp / "data"), "--streamkey", STREAM_KEY]
    argv += ["--webserverport", str(web), "--rtmpport", str(rtmp)]
    step(f"starting {' '.join(argv[1:])}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(process, web, log)
        failures = check_answers(web)
    finally:
        stop(process)
    if failures:
        raise SmokeError("\n".join(failures) + f"\n{tail(log)}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the daemon's own process group (it may have children), SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", nargs="+", type=Path, help="the one built wheel")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if len(args.wheel) != 1:
        parser.error(f"expected one wheel, got {[str(w) for w in args.wheel]}")
    wheel = args.wheel[0].resolve()
    tmp = Path(tempfile.mkdtemp(prefix="owncast-wheel-smoke-")).resolve()
    started = time.monotonic()
    try:
        if tmp.is_relative_to(CHECKOUT):
            raise SmokeError(f"{tmp} is inside the checkout; set TMPDIR elsewhere")
        step(f"checking {wheel.name}")
        check_contents(wheel)
        env = clean_env()
        step(f"installing it into {tmp}/venv")
        venv = install(wheel, tmp, env)
        serve(venv, tmp, env)
    except SmokeError as e:
        print(f"wheel-smoke: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            step(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    step(f"passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
