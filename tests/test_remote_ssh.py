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
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def _run(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HOME": str(cwd.parent / "home")}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _dvc(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return _run(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


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


def _project(path: Path) -> Path:
    """A git + DVC project with one input and one stage, committed."""
    path.mkdir()
    (path.parent / "home").mkdir(exist_ok=True)
    _run("git", "init", "-q", "-b", "main", cwd=path)
    _dvc("init", "-q", cwd=path)
    (path / "data.txt").write_text("the data\n")
    _dvc("add", "-q", "data.txt", cwd=path)
    _dvc("stage", "add", "-q", "-n", "copy", "-d", "data.txt", "-o", "out.txt",
         "cp data.txt out.txt", cwd=path)  # fmt: skip
    _dvc("repro", "-q", cwd=path)
    _run("git", "add", "-A", cwd=path)
    _run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p", cwd=path)
    return path


def _remote(repo: Path, url: str, key: Path) -> None:
    _dvc("remote", "add", "--local", "-d", "team", url, cwd=repo)
    _dvc("remote", "modify", "--local", "team", "keyfile", key, cwd=repo)


def test_push_over_ssh_then_a_fresh_clone_pulls_and_runs_no_stage(sshd, tmp_path):
    port, key, _ = sshd
    url = f"ssh://{USER}@127.0.0.1:{port}{tmp_path / 'storage'}"
    project = _project(tmp_path / "project")
    _remote(project, url, key)
    _dvc("push", "--run-cache", cwd=project)
    assert (tmp_path / "storage" / "files" / "md5").is_dir()
    assert (tmp_path / "storage" / "runs").is_dir()

    _run("git", "clone", "-q", project, tmp_path / "clone", cwd=tmp_path)
    clone = tmp_path / "clone"
    _remote(clone, url, key)
    _dvc("pull", cwd=clone)
    assert (clone / "out.txt").read_text() == "the data\n"
    repro = _dvc("repro", cwd=clone)
    assert "Running stage" not in repro.stdout
    lazy = tmp_path / "lazy"
    _run("git", "clone", "-q", project, lazy, cwd=tmp_path)
    _remote(lazy, url, key)
    # CI's way: restore what a stage that must run needs; skip the rest without fetching it
    assert "Running stage" not in _dvc("repro", "--pull", "--allow-missing", cwd=lazy).stdout
    assert not (lazy / "data.txt").exists()  # not needed, so not fetched
    (lazy / "data.txt").write_text("other data\n")
    assert "Running stage 'copy'" in _dvc("repro", "--pull", "--allow-missing", cwd=lazy).stdout


@pytest.mark.parametrize("what", ["unreachable", "bad key"])
def test_a_remote_that_fails_says_so_without_a_traceback(sshd, tmp_path, what):
    port, key, stranger = sshd
    if what == "unreachable":
        port, stranger = free_port(), key  # nothing listens there
    project = _project(tmp_path / "project")
    _remote(project, f"ssh://{USER}@127.0.0.1:{port}{tmp_path / 'storage'}", stranger)
    failed = _dvc("push", cwd=project, check=False)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "storage").exists()
