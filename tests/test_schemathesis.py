"""The API keeps to its own document: schemathesis against the real daemon.

A bounded, seeded run (the same cases every time) of every operation of
``owncast/api/openapi.yaml``, with valid and invalid data and every check: no answer may be
a 5xx, break the documented status codes, content types, headers or schemas, refuse a
body the document allows or accept one it forbids, or ignore missing credentials. The
admin operations get basic auth, the integration ones a token with every scope.

What the daemon may not do during the run is kept from it by ``tests.schemathesis_hooks``
(the throttle is relaxed for this daemon only, nothing leaves the machine, the run keeps
its credentials). Four operations depend on the machine or the moment rather than on the
body alone (an ffmpeg binary, its encoders, an image file, a broadcast to disconnect):
for them a 400 is as good an answer to valid data as a 200.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.trial import unittest

from tests.daemon import REPO_ROOT, ProcessOutput, start_daemon

SCHEMATHESIS = os.path.join(sys.prefix, "bin", "schemathesis")
#: Cases per operation and phase: the run takes about half a minute.
MAX_EXAMPLES = 25
SEED = 1

CONFIG = """\
hooks = "tests.schemathesis_hooks"

[auth.openapi.AdminBasicAuth]
username = "admin"
password = "${OWNCAST_KEY}"

[auth.openapi.AccessToken]
bearer = "${OWNCAST_TOKEN}"

# These answer 400 to valid bodies when the machine or the moment says no: no ffmpeg at
# the path, an encoder the ffmpeg lacks, no image at the path, no broadcast to end.
[[operations]]
include-path = [
    "/api/admin/config/ffmpegpath",
    "/api/admin/config/video/codec",
    "/api/admin/config/logo",
    "/api/admin/disconnect",
]
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx",
]
"""


class SchemathesisTests(unittest.TestCase):
    timeout = 300

    async def test_the_api_keeps_to_its_document(self):
        key = "schemathesis-" + secrets.token_hex(6)
        daemon = await start_daemon(
            self,
            Path(self.mktemp()).resolve(),
            args=[
                "--streamkey",
                key,
                "--trustedproxy",
                "127.0.0.1/32",
                "--allowprivate",
                "--directoryurl",
                "http://127.0.0.1:9/",
            ],
        )
        scopes = ["CAN_SEND_MESSAGES", "CAN_SEND_SYSTEM_MESSAGES", "HAS_ADMIN_ACCESS"]
        created = await daemon.post(
            "/api/admin/accesstokens/create",
            {"name": "schemathesis", "scopes": scopes},
            auth=("admin", key),
        )
        self.assertEqual(created.code, 200, created)
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir(parents=True)
        (workdir / "schemathesis.toml").write_text(CONFIG, "utf-8")
        env = dict(os.environ)
        env.update(
            OWNCAST_KEY=key,
            OWNCAST_TOKEN=created.json["token"],
            PYTHONPATH=str(REPO_ROOT),
            NO_COLOR="1",
        )
        argv = [
            SCHEMATHESIS,
            "--config-file",
            str(workdir / "schemathesis.toml"),
            "run",
            daemon.base + "/api/openapi.yaml",
            "--url",
            daemon.base,
            "--checks",
            "all",
            "--mode",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--no-color",
        ]
        run = ProcessOutput()
        reactor.spawnProcess(run, SCHEMATHESIS, argv, env=env, path=str(workdir))
        await run.ended
        code = run.exit_code
        output = run.output.decode("utf-8", "replace")
        self.assertEqual(code, 0, output[-20000:])
        self.assertNotIn("Traceback", daemon.output, daemon.output[-20000:])
