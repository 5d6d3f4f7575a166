"""A real S3-compatible server for tests: moto's server mode in a child process.

With ``check_signatures`` (the default) every request must be signed with the key it
hands out (``INITIAL_NO_AUTH_ACTION_COUNT``: the first three calls, which make an IAM
user with an access key allowed ``s3:*``, go unchecked). moto then cannot answer
anonymous reads, so tests where a player fetches segments turn checking off."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.daemon import free_port, wait_until

MOTO = str(Path(sys.executable).with_name("moto_server"))


class _Output(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.running = False


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret: str

    def config(self, bucket: str, **extra: Any) -> dict:
        return {
            "enabled": True,
            "endpoint": self.endpoint,
            "servingEndpoint": "",
            "accessKey": self.access_key,
            "secret": self.secret,
            "bucket": bucket,
            "region": "",
            "acl": "",
            **extra,
        }


def _make_key(endpoint: str) -> tuple[str, str]:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="owncast")
    key = iam.create_access_key(UserName="owncast")["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="owncast", PolicyName="s3", PolicyDocument=json.dumps(policy))
    return key["AccessKeyId"], key["SecretAccessKey"]


async def start_s3(testcase: unittest.TestCase, check_signatures: bool = True) -> S3Server:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin"}
    if check_signatures:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    proto = _Output()
    process = reactor.spawnProcess(
        proto,
        MOTO,
        [MOTO, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
    )

    async def stop() -> None:
        if proto.running:
            process.signalProcess("TERM")
            await wait_until(lambda: not proto.running, 10, "moto to stop")

    testcase.addCleanup(stop)
    endpoint = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        try:
            await (await treq.get(endpoint + "/moto-api/", timeout=1)).content()
            return True
        except Exception:
            return False

    await wait_until(answers, 30, f"moto on {port}: {bytes(proto.output)[-300:]!r}", 0.1)
    if not check_signatures:
        return S3Server(endpoint, "any-key", "any-secret")
    return S3Server(endpoint, *await deferToThread(_make_key, endpoint))


async def delete_recording_from_bucket(
    testcase: unittest.TestCase, daemon: Any, recording_id: str, segments: list[str], auth: Any
) -> None:
    """The owner deletes the recording: its segments (bucket URLs) leave the bucket."""
    response = await daemon.post("/api/admin/recordings/delete", {"id": recording_id}, auth=auth)
    testcase.assertEqual(response.code, 200, response)

    async def gone() -> bool:
        codes = [(await treq.get(url, timeout=10)).code for url in segments]
        return all(code == 404 for code in codes)

    await wait_until(gone, 15, "the recording's segments to leave the bucket", 0.5)
