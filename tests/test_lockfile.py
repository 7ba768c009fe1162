"""dvc.lock kept in dvc.yaml's order, without the entries of removed matrix items."""

from __future__ import annotations

import pytest

from quantpipe.lockfile import machine_dependent, stage_order, tidy_lock, tidy_lockfile
from tests.conftest import REPO_ROOT

DVC_YAML = """\
stages:
  train:
    cmd: python -m stages.train
  quantize:
    matrix:
      bits: ${quantize.bits}
    cmd: python -m stages.quantize --bits ${item.bits}
  cast:
    matrix:
      dtype: ${quantize.casts}
    cmd: python -m stages.cast --dtype ${item.dtype}
  evaluate:
    cmd: python -m stages.evaluate
"""


def entry(cmd: str) -> str:
    return f"    cmd: {cmd}\n    outs:\n    - path: out/{cmd.split()[-1]}\n      md5: 0123\n"


CANONICAL = (
    "schema: '2.0'\nstages:\n"
    + "  train:\n"
    + entry("python -m stages.train")
    + "  quantize@8:\n"
    + entry("python -m stages.quantize --bits 8")
    + "  quantize@16:\n"
    + entry("python -m stages.quantize --bits 16")
    + "  cast@float16:\n"
    + entry("python -m stages.cast --dtype float16")
    + "  evaluate:\n"
    + entry("python -m stages.evaluate")
)
ITEMS = {"quantize": ["8", "16"], "cast": ["float16"]}


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    return tmp_path


def test_stage_order_expands_matrix_stages_in_list_order():
    order = stage_order(["train", "quantize", "cast", "evaluate"], {"quantize": ["16", "4"]})
    assert order == ["train", "quantize@16", "quantize@4", "cast", "evaluate"]


def test_a_restored_item_goes_back_to_its_place_byte_for_byte(repo):
    # what DVC leaves after a width is removed and put back: its entry appended at the end
    blocks = CANONICAL.split("  quantize@16:\n")
    q16 = "  quantize@16:\n" + entry("python -m stages.quantize --bits 16")
    appended = blocks[0] + blocks[1].replace(entry("python -m stages.quantize --bits 16"), "", 1)
    (repo / "dvc.lock").write_text(appended + q16)
    assert tidy_lockfile(repo / "dvc.lock", repo / "dvc.yaml", ITEMS) == []
    assert (repo / "dvc.lock").read_text() == CANONICAL


def test_removed_items_lose_their_entries_and_the_rest_is_kept_as_written(repo):
    (repo / "dvc.lock").write_text(CANONICAL)
    removed = tidy_lockfile(repo / "dvc.lock", repo / "dvc.yaml", {"quantize": ["8"], "cast": []})
    assert removed == ["quantize@16", "cast@float16"]
    assert (repo / "dvc.lock").read_text() == (
        "schema: '2.0'\nstages:\n"
        + "  train:\n"
        + entry("python -m stages.train")
        + "  quantize@8:\n"
        + entry("python -m stages.quantize --bits 8")
        + "  evaluate:\n"
        + entry("python -m stages.evaluate")
    )


def test_nothing_to_do_leaves_the_file_untouched(repo):
    (repo / "dvc.lock").write_text(CANONICAL)
    before = (repo / "dvc.lock").stat().st_mtime_ns
    assert tidy_lockfile(repo / "dvc.lock", repo / "dvc.yaml", ITEMS) == []
    assert (repo / "dvc.lock").read_text() == CANONICAL
    assert (repo / "dvc.lock").stat().st_mtime_ns == before


def test_no_lockfile_yet_is_nothing_to_do(repo):
    assert tidy_lockfile(repo / "dvc.lock", repo / "dvc.yaml", ITEMS) == []
    assert not (repo / "dvc.lock").exists()


def test_unknown_entries_are_kept_after_the_known_ones():
    entries = {"other@x": 1, "evaluate": 2, "quantize@4": 3, "train": 4}
    removed = tidy_lock(entries, ["train", "evaluate"], ["quantize"])
    assert removed == ["quantize@4"]
    assert list(entries) == ["train", "evaluate", "other@x"]


def test_machine_dependent_paths_come_from_the_stages_meta(tmp_path):

    dvcfile = tmp_path / "dvc.yaml"
    dvcfile.write_text(
        "stages:\n  a:\n    cmd: x\n  t:\n    cmd: y\n    meta:\n"
        "      machine_dependent:\n        - m/latency.json\n        - m/more.json\n"
    )
    assert machine_dependent(dvcfile) == ["m/latency.json", "m/more.json"]
    assert machine_dependent(REPO_ROOT / "dvc.yaml") == ["metrics/mnist/latency.json"]
