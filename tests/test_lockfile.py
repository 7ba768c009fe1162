"""dvc.yaml and dvc.lock as CI's checks read them: the machine-dependent outputs."""

from __future__ import annotations

import yaml

from quantpipe.lockfile import comparable_lock, machine_dependent, pipeline_outputs
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
