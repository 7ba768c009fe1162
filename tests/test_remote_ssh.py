"""The SSH recipe of README's "Working as a team", against a real OpenSSH server on loopback.

The test starts Debian's ``sshd`` itself (a throw-away host key, one authorized client key, a
free port on 127.0.0.1) and stops it after. A small DVC project (one stage) pushes its data,
output and run-cache over SSH with ``dvc-ssh``; a fresh clone pulls and reproduces nothing.
Without ``sshd`` the tests skip, saying how to install it, except when ``CI=true``: there
they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remotes import clone, dvc, error_lines, new_project
from tests.test_serve import free_port

pytestmark = pytest.mark.slow
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
USER = os.environ.get("USER") or "root"


def _require_sshd() -> None:
    if not Path(SSHD).is_file():
        message = "no sshd: install OpenSSH's server (Debian: apt-get install openssh-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _keypair(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[tuple[int, Path, Path]]:
    """A running sshd on 127.0.0.1: its port, an authorized client key, an unknown one."""
    _require_sshd()
    base = tmp_path_factory.mktemp("sshd")
    host_key = _keypair(base / "host_key")
    client_key = _keypair(base / "client_key")
    stranger_key = _keypair(base / "stranger_key")
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    if os.geteuid() == 0:  # as root, sshd wants its privilege-separation directory
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nPidFile {base / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
    )
    log = base / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-e", "-E", str(log), "-f", str(config)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {log.read_text() if log.exists() else ''}")
        time.sleep(0.05)
    yield port, client_key, stranger_key
    proc.terminate()
    proc.wait(timeout=10)


def _remote(repo: Path, url: str, key: Path) -> None:
    dvc("remote", "add", "--local", "-d", "team", url, cwd=repo)
    dvc("remote", "modify", "--local", "team", "keyfile", key, cwd=repo)


def test_push_over_ssh_then_a_fresh_clone_pulls_and_runs_no_stage(sshd, tmp_path):
    port, key, _ = sshd
    url = f"ssh://{USER}@127.0.0.1:{port}{tmp_path / 'storage'}"
    project = new_project(tmp_path / "project")
    _remote(project, url, key)
    dvc("push", "--run-cache", cwd=project)
    assert (tmp_path / "storage" / "files" / "md5").is_dir()
    assert (tmp_path / "storage" / "runs").is_dir()

    fresh = clone(project, tmp_path / "clone")
    _remote(fresh, url, key)
    dvc("pull", cwd=fresh)
    assert (fresh / "out.txt").read_text() == "the data\n"
    repro = dvc("repro", cwd=fresh)
    assert "Running stage" not in repro.stdout
    lazy = clone(project, tmp_path / "lazy")
    _remote(lazy, url, key)
    # CI's way: restore what a stage that must run needs; skip the rest without fetching it
    assert "Running stage" not in dvc("repro", "--pull", "--allow-missing", cwd=lazy).stdout
    assert not (lazy / "data.txt").exists()  # not needed, so not fetched
    (lazy / "data.txt").write_text("other data\n")
    assert "Running stage 'copy'" in dvc("repro", "--pull", "--allow-missing", cwd=lazy).stdout


@pytest.mark.parametrize("what", ["unreachable", "bad key"])
def test_a_remote_that_fails_says_so_without_a_traceback(sshd, tmp_path, what):
    port, key, stranger = sshd
    if what == "unreachable":
        port, stranger = free_port(), key  # nothing listens there
    project = new_project(tmp_path / "project")
    _remote(project, f"ssh://{USER}@127.0.0.1:{port}{tmp_path / 'storage'}", stranger)
    failed = dvc("push", cwd=project, check=False)
    assert failed.returncode != 0
    errors = error_lines(failed)
    assert len(errors) == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "storage").exists()
