"""dvc.yaml and dvc.lock as CI's checks read them: the machine-dependent outputs."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from quantpipe.lockfile import (
    comparable_lock,
    machine_dependent,
    outputs_digest,
    pipeline_outputs,
    recorded_outputs,
    verify_outputs,
)
from tests.conftest import REPO_ROOT

DVC_YAML = """\
stages:
  a:
    cmd: x
    outs:
      - m/a.json
  t:
    cmd: y
    meta:
      machine_dependent:
        - m/latency.json
        - m/more.json
    outs:
      - m/latency.json:
          cache: false
"""

LOCK = """\
schema: '2.0'
stages:
  a:
    cmd: x
    outs:
    - path: m/a.json
      hash: md5
      md5: {a}
      size: 10
  t:
    cmd: y
    outs:
    - path: m/latency.json
      hash: md5
      md5: {t}
      size: {size}
"""


def test_machine_dependent_paths_come_from_the_stages_meta(tmp_path):
    dvcfile = tmp_path / "dvc.yaml"
    dvcfile.write_text(DVC_YAML)
    assert machine_dependent(dvcfile) == ["m/latency.json", "m/more.json"]
    assert machine_dependent(REPO_ROOT / "dvc.yaml") == ["metrics/mnist/latency.json"]


def test_pipeline_outputs_lists_every_stage_output(tmp_path):
    dvcfile = tmp_path / "dvc.yaml"
    dvcfile.write_text(DVC_YAML)
    assert pipeline_outputs(dvcfile) == {"m/a.json", "m/latency.json"}


def test_two_machines_timings_compare_equal_and_nothing_else_does(tmp_path):
    dvcfile = tmp_path / "dvc.yaml"
    dvcfile.write_text(DVC_YAML)
    here = comparable_lock(LOCK.format(a="1" * 32, t="2" * 32, size=50), dvcfile)
    there = comparable_lock(LOCK.format(a="1" * 32, t="3" * 32, size=51), dvcfile)
    other = comparable_lock(LOCK.format(a="4" * 32, t="2" * 32, size=50), dvcfile)
    assert here == there
    assert here != other
    outs = yaml.safe_load(here)["stages"]["t"]["outs"]
    assert outs == [{"path": "m/latency.json"}]


def test_the_pipeline_has_no_matrix_stage():
    """A matrix item removed from params.yaml would leave its file and dvc.lock entry behind,
    and a directory one stage owns is what DVC empties and restores exactly (docs/pipeline.md)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert [name for name, stage in stages.items() if "matrix" in stage or "foreach" in stage] == []


def _lock_of(outs: dict[str, str]) -> str:
    entries = "".join(
        f"    - path: {p}\n      hash: md5\n      md5: {m}\n" for p, m in outs.items()
    )
    return f"schema: '2.0'\nstages:\n  s:\n    cmd: x\n    outs:\n{entries}"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _repo_with_outputs(tmp_path):
    """models/a.npz (a file) and models/q (a directory, its listing in the cache)."""
    (tmp_path / "models" / "q").mkdir(parents=True)
    (tmp_path / "models" / "a.npz").write_bytes(b"float model")
    (tmp_path / "models" / "q" / "q8.npz").write_bytes(b"q8")
    listing = json.dumps([{"md5": _md5(b"q8"), "relpath": "q8.npz"}]).encode()
    digest = _md5(listing)
    cached = tmp_path / "cache" / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(listing)
    outs = {"models/a.npz": _md5(b"float model"), "models/q": f"{digest}.dir", "data/x": "0" * 32}
    return _lock_of(outs), tmp_path / "cache"


def test_outputs_are_checked_file_by_file_against_the_lock(tmp_path):
    lock, cache = _repo_with_outputs(tmp_path)
    assert recorded_outputs(lock, "models") == {
        "models/a.npz": _md5(b"float model"),
        "models/q": recorded_outputs(lock, "models/q")["models/q"],
    }
    assert verify_outputs(lock, tmp_path, cache, "models") == []
    (tmp_path / "models" / "q" / "q8.npz").write_bytes(b"q8, rebuilt")
    (tmp_path / "models" / "q" / "q4.npz").write_bytes(b"stale")
    (tmp_path / "models" / "a.npz").unlink()
    (tmp_path / "models" / "stray.npz").write_bytes(b"in no output")
    (tmp_path / "models" / ".gitignore").write_text("/a.npz\n")  # DVC's own
    assert verify_outputs(lock, tmp_path, cache, "models") == [
        "models/a.npz: missing",
        "models/q/q4.npz: not in dvc.lock",
        "models/q/q8.npz: not the file dvc.lock records",
        "models/stray.npz: not in dvc.lock",
    ]
    assert verify_outputs(lock, tmp_path, cache, "nothing") == [
        "dvc.lock records no output under nothing"
    ]


def test_a_listing_missing_or_corrupt_in_the_cache_is_reported(tmp_path):
    lock, cache = _repo_with_outputs(tmp_path)
    (listing,) = cache.rglob("*.dir")
    listing.write_bytes(listing.read_bytes() + b" ")
    assert verify_outputs(lock, tmp_path, cache, "models/q") == [
        "models/q: its listing in the cache is corrupt"
    ]
    listing.unlink()
    (problem,) = verify_outputs(lock, tmp_path, cache, "models/q")
    assert problem.startswith("models/q: its listing ")
    assert problem.endswith("(dvc pull it)")


def test_the_digest_names_the_recorded_hashes_and_nothing_else(tmp_path):
    lock, _ = _repo_with_outputs(tmp_path)
    digest = outputs_digest(lock, "models")
    assert digest.startswith("sha256:")
    assert len(digest) == 7 + 64
    assert outputs_digest(lock.replace("data/x", "data/y"), "models") == digest
    assert outputs_digest(lock.replace(_md5(b"float model"), "1" * 32), "models") != digest
    with pytest.raises(ValueError, match=r"dvc\.lock records no output under modelz"):
        outputs_digest(lock, "modelz")
