"""The S3 recipe of docs/team.md, against moto's S3 server on loopback.

The test starts moto's server itself (``moto[s3]`` with Flask, from the dev extra: the S3
server that installs here from PyPI; MinIO does not) on a free port on 127.0.0.1, with
authentication on: an IAM user and its access key are made first, and from then on a
request signed with any other key or secret is refused, as by AWS. A small DVC project
pushes its data, output and run-cache with ``dvc-s3``; a fresh clone pulls and reproduces
nothing. The server's request log gives the S3 operations DVC made, and every one of them
must have been answered (moto implements each). Without moto the tests skip, saying how to
install it, except when ``CI=true``: there they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.remotes import clone, commit, dvc, error_lines, new_project, run
from tests.test_serve import free_port

pytestmark = pytest.mark.slow
BUCKET = "team"
REGION = "us-east-1"
#: Requests moto serves before it checks signatures: the IAM user, its key, its policy.
UNSIGNED_SETUP_REQUESTS = 3
SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=True)
server.start()
sys.stdin.read()  # until the test closes the pipe
server.stop()
"""
#: A werkzeug request line of moto's log: method, path with query, status.
REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def _require_moto() -> None:
    try:
        import boto3  # noqa: F401
        import flask  # noqa: F401
        import moto  # noqa: F401
    except ModuleNotFoundError:
        message = "no moto: pip install 'moto[s3]' flask flask-cors (the dev extra has them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class S3:
    endpoint: str
    key: str
    secret: str
    log: Path

    def client(self, key: str | None = None, secret: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key or self.key,
            aws_secret_access_key=secret or self.secret,
        )

    def mark(self) -> int:
        """Where the request log ends now: :meth:`operations` reads from there."""
        return self.log.stat().st_size

    def operations(self, since: int, until: int | None = None) -> Counter[tuple[str, str]]:
        """The S3 operations requested between two marks, with their HTTP status."""
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read(-1 if until is None else until - since).decode("utf-8", "replace")
        return Counter(
            (s3_operation(method, target), status)
            for method, target, status in REQUEST.findall(text)
        )


def s3_operation(method: str, target: str) -> str:
    """The S3 API operation of a path-style request (``GET /team?list-type=2``...)."""
    path, _, query = target.partition("?")
    keys = {pair.partition("=")[0] for pair in query.split("&") if pair}
    on_bucket = path.strip("/").count("/") == 0
    if path == "/":
        return "ListBuckets" if method == "GET" else f"{method} /"
    if on_bucket:
        if method == "GET":
            return "ListObjectsV2" if "list-type" in keys else "ListObjects"
        if method == "POST" and "delete" in keys:
            return "DeleteObjects"
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
            method, f"{method} bucket"
        )
    if method == "PUT":
        return "UploadPart" if "partNumber" in keys else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in keys else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in keys else "DeleteObject"
    return {"HEAD": "HeadObject", "GET": "GetObject"}[method]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1, signatures checked, with an empty bucket."""
    _require_moto()
    import boto3

    base = tmp_path_factory.mktemp("s3")
    log = base / "requests.log"
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port)],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNSIGNED_SETUP_REQUESTS)},
        )
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"moto's server did not start: {log.read_text()}")
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client(
        "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )  # fmt: skip
    iam.create_user(UserName="dvc")
    key = iam.create_access_key(UserName="dvc")["AccessKey"]
    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    policy = json.dumps({"Version": "2012-10-17", "Statement": [everything]})
    iam.put_user_policy(UserName="dvc", PolicyName="all", PolicyDocument=policy)
    server = S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], log)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=20)


def _remote(repo: Path, s3: S3, prefix: str, key: str | None = None, secret: str | None = None):
    """The recipe: the remote, its endpoint (S3-compatible stores) and credentials, --local."""
    dvc("remote", "add", "--local", "-d", "team", f"s3://{BUCKET}/{prefix}", cwd=repo)
    for option, value in (
        ("endpointurl", s3.endpoint),
        ("access_key_id", key or s3.key),
        ("secret_access_key", secret or s3.secret),
    ):
        dvc("remote", "modify", "--local", "team", option, value, cwd=repo)


def _objects(s3: S3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def _check_content_addressed(objects: dict[str, bytes], prefix: str) -> int:
    """Every object under ``files/md5/`` holds the bytes its name is the md5 of (a
    directory's listing, ``.dir``, included): nothing truncated or corrupt."""
    checked = 0
    for key, data in objects.items():
        name = key.removeprefix(f"{prefix}/files/md5/")
        if name == key:
            continue
        digest = name.replace("/", "").removesuffix(".dir")
        assert hashlib.md5(data).hexdigest() == digest, key
        checked += 1
    return checked


def test_push_over_s3_then_a_fresh_clone_pulls_and_runs_no_stage(s3, tmp_path):
    ops: Counter[tuple[str, str]] = Counter()  # what DVC asked of S3 (the test's own aside)

    def dvc_s3(*args: str, cwd: Path) -> str:
        start = s3.mark()
        out = dvc(*args, cwd=cwd).stdout
        ops.update(s3.operations(start, s3.mark()))
        return out

    project = new_project(tmp_path / "project")
    _remote(project, s3, "push")
    dvc_s3("push", "--run-cache", cwd=project)
    objects = _objects(s3, "push")
    assert _check_content_addressed(objects, "push") == 1  # data.txt = out.txt, one object
    assert any(k.startswith("push/runs/") for k in objects)

    fresh = clone(project, tmp_path / "clone")
    _remote(fresh, s3, "push")
    dvc_s3("pull", cwd=fresh)
    assert (fresh / "out.txt").read_text() == "the data\n"
    assert "Running stage" not in dvc("repro", cwd=fresh).stdout
    assert "Cache and remote 'team' are in sync" in dvc_s3("status", "-c", cwd=fresh)
    lazy = clone(project, tmp_path / "lazy")
    _remote(lazy, s3, "push")
    assert "Running stage" not in dvc_s3("repro", "--pull", "--allow-missing", cwd=lazy)
    (lazy / "data.txt").write_text("other data\n")
    assert "Running stage 'copy'" in dvc_s3("repro", "--pull", "--allow-missing", cwd=lazy)

    # the garbage collector, on the remote: push another version, go back, collect it
    (project / "data.txt").write_text("a version to collect\n")
    dvc("add", "-q", "data.txt", cwd=project)
    dvc_s3("push", cwd=project)
    run("git", "checkout", "--", "data.txt.dvc", cwd=project)
    dvc("checkout", "-q", "--force", cwd=project)
    dvc_s3("gc", "--cloud", "--workspace", "--force", cwd=project)
    gone = hashlib.md5(b"a version to collect\n").hexdigest()
    assert f"push/files/md5/{gone[:2]}/{gone[2:]}" not in _objects(s3, "push")
    assert _check_content_addressed(_objects(s3, "push"), "push") == 1

    failed = {op: n for op, n in ops.items() if not (op[1].startswith("2") or op[1] == "404")}
    assert not failed, f"requests the server did not answer: {failed}"
    assert {op for op, _ in ops} >= {"ListObjectsV2", "HeadObject", "PutObject", "GetObject"}
    assert any(op in ("DeleteObjects", "DeleteObject") for op, _ in ops)
    print("\nS3 operations DVC made (push, pull, status -c, repro --pull, gc -c):", dict(ops))


@pytest.mark.parametrize("what", ["unreachable", "unknown key", "wrong secret"])
def test_a_remote_that_fails_says_so_in_one_line(s3, tmp_path, what):
    project = new_project(tmp_path / "project")
    if what == "unreachable":
        dead = S3(f"http://127.0.0.1:{free_port()}", s3.key, s3.secret, s3.log)
        _remote(project, dead, "nothing")
    else:
        key = "AKIAUNKNOWN000000000" if what == "unknown key" else s3.key
        _remote(project, s3, "nothing", key=key, secret="not-the-secret")
    failed = dvc("push", cwd=project, check=False)
    assert failed.returncode != 0
    assert len(error_lines(failed)) == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert _objects(s3, "nothing") == {}
    print(f"\n{what}: {error_lines(failed)[0]}")


def test_an_object_missing_from_the_remote_is_named_in_one_line(s3, tmp_path):
    project = new_project(tmp_path / "project")
    _remote(project, s3, "missing")
    dvc("push", cwd=project)
    out_md5 = hashlib.md5(b"the data\n").hexdigest()
    s3.client().delete_object(Bucket=BUCKET, Key=f"missing/files/md5/{out_md5[:2]}/{out_md5[2:]}")
    fresh = clone(project, tmp_path / "clone")
    _remote(fresh, s3, "missing")
    failed = dvc("pull", cwd=fresh, check=False)
    assert failed.returncode != 0
    errors = error_lines(failed)
    assert len(errors) == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert "data.txt" in failed.stderr  # which file is missing
    print(f"\nmissing object: {errors[0]}")


def _big_project(path: Path) -> Path:
    """A project whose data is one file large enough for multipart upload and 200 small
    ones, so that a push takes long enough to be interrupted."""
    project = new_project(path)
    data = project / "blobs"
    data.mkdir()
    rng = __import__("random").Random(0)
    (data / "big.bin").write_bytes(rng.randbytes(110 * 2**20))
    for i in range(200):
        (data / f"small{i:03d}.bin").write_bytes(rng.randbytes(4096))
    dvc("add", "-q", "blobs", cwd=project)
    commit(project)
    return project


def test_an_interrupted_push_completes_when_rerun_and_leaves_nothing_corrupt(s3, tmp_path):
    project = _big_project(tmp_path / "project")
    _remote(project, s3, "interrupted")
    start = s3.mark()
    push = subprocess.Popen(
        [sys.executable, "-m", "dvc", "push", "-j", "2"],
        cwd=project,
        env={**os.environ, "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path / "home")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while s3.operations(start)[("UploadPart", "200")] < 1:  # the big file is on its way
        assert push.poll() is None, "the push ended before it could be interrupted"
        assert time.monotonic() < deadline, "no part of the big file was uploaded in 120 s"
        time.sleep(0.02)
    os.killpg(push.pid, signal.SIGKILL)
    push.wait(timeout=10)
    killed = s3.mark()
    before = _objects(s3, "interrupted")
    big_md5 = hashlib.md5((project / "blobs" / "big.bin").read_bytes()).hexdigest()
    big_key = f"interrupted/files/md5/{big_md5[:2]}/{big_md5[2:]}"
    assert big_key not in before  # the interrupted upload left no object behind...
    uploads = s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [big_key]  # ...but parts (see docs/team.md)
    _check_content_addressed(before, "interrupted")  # what is there is whole

    again = s3.mark()
    rerun = dvc("push", cwd=project, timeout=300)
    assert "files pushed" in rerun.stdout
    end = s3.mark()
    after = _objects(s3, "interrupted")
    # data.txt (= out.txt), the 201 blobs and the directory's listing
    assert _check_content_addressed(after, "interrupted") == 1 + 201 + 1
    assert big_key in after
    ops = s3.operations(start, killed) + s3.operations(again, end)
    assert ops[("CreateMultipartUpload", "200")] == 2  # the interrupted upload, the rerun's
    assert ops[("CompleteMultipartUpload", "200")] == 1
    print("\nS3 operations of an interrupted push and its rerun:", dict(sorted(ops.items())))
    fresh = clone(project, tmp_path / "clone")
    _remote(fresh, s3, "interrupted")
    dvc("pull", cwd=fresh, timeout=300)
    pulled = (fresh / "blobs" / "big.bin").read_bytes()
    assert pulled == (project / "blobs" / "big.bin").read_bytes()
