"""The GitHub workflow keeps the order that matters (it cannot run here, so check it here)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOW = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
JOBS = WORKFLOW["jobs"]
# PyYAML reads the key `on` as True
TRIGGERS = WORKFLOW.get("on", WORKFLOW.get(True))


def index(steps: list[dict], predicate, what: str) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert found, f"no step {what}"
    return found[0]


def runs(command: str):
    return lambda step: command in step.get("run", "")


def uses(action: str):
    return lambda step: step.get("uses", "").startswith(action + "@")


def test_triggers_are_push_and_pull_request_never_pull_request_target():
    assert set(TRIGGERS) == {"push", "pull_request"}
    assert "v*" in TRIGGERS["push"]["tags"]


def test_reproduce_checks_the_lock_before_reporting_and_gating():
    steps = JOBS["reproduce"]["steps"]
    checkout = index(steps, uses("actions/checkout"), "checkout")
    assert steps[checkout]["with"]["fetch-depth"] == 0
    repro = index(steps, runs(".ci/steps reproduce"), "running dvc repro and the lock check")
    report = index(steps, runs(".ci/steps report"), "reporting")
    plots = index(steps, runs(".ci/steps plots"), "plotting")
    images = index(steps, runs(".ci/steps images plots/images"), "rendering the plots as images")
    upload = index(steps, uses("actions/upload-artifact"), "uploading the results")
    gate = index(steps, runs(".ci/steps gate"), "gating")
    assert checkout < repro < report < plots < images < upload < gate
    assert "$GITHUB_STEP_SUMMARY" in steps[report]["run"]
    for path in ("models/", "metrics/", "report.md", "plots/"):
        assert path in steps[upload]["with"]["path"]


def test_same_bytes_is_checked_on_x86_64_and_arm_before_the_image_is_built():
    job = JOBS["same-bytes"]
    assert set(job["strategy"]["matrix"]["runner"]) == {"ubuntu-24.04", "ubuntu-24.04-arm"}
    assert job["runs-on"] == "${{ matrix.runner }}"
    steps = job["steps"]
    repro = index(steps, runs(".ci/steps reproduce"), "checking the lock on the runner")
    same = index(steps, runs(".ci/steps same-bytes"), "rebuilding under other environments")
    assert repro < same
    assert "same-bytes" in JOBS["container"]["needs"]


def test_the_stages_code_deps_are_checked():
    steps = JOBS["test"]["steps"]
    index(steps, runs("python .ci/stage_deps.py"), "checking the stages' code deps")


MODEL_STAGES = "split train quantize reference mnist_train mnist_quantize"


def test_image_is_built_from_the_gated_models_by_hash_and_pushed_only_after_its_smoke_test():
    job = JOBS["container"]
    assert {"test", "reproduce"} <= set(job["needs"])
    produce = JOBS["reproduce"]["steps"]
    gate = index(produce, runs(".ci/steps gate"), "gating")
    pushed = index(produce, runs(f"dvc push {MODEL_STAGES}"), "pushing the gated models")
    handed = max(i for i, step in enumerate(produce) if uses("actions/upload-artifact")(step))
    assert produce[handed]["with"]["name"] == "dvc-storage"
    assert gate < pushed < handed
    steps = job["steps"]
    download = index(steps, uses("actions/download-artifact"), "downloading the DVC remote")
    assert steps[download]["with"]["name"] == "dvc-storage"
    pull = index(steps, runs(f"dvc pull {MODEL_STAGES}"), "pulling the models by hash")
    build = index(steps, runs(".ci/steps container"), "building and smoke-testing")
    assert steps[build]["env"]["ENGINE"] == "docker"
    login = index(steps, uses("docker/login-action"), "logging in")
    push = index(steps, runs("docker push"), "pushing")
    assert download < pull < build < login < push
    assert not any(runs("dvc repro")(step) for step in steps)  # not a rebuild
    for step in (steps[login], steps[push]):
        condition = step["if"]
        assert "github.event_name == 'push'" in condition
        assert "github.event.repository.default_branch" in condition
        assert "startsWith(github.ref, 'refs/tags/v')" in condition
    assert "tags+=(latest)" in steps[push]["run"]
    assert '"$SHA"' in steps[push]["run"]
    assert job["permissions"]["packages"] == "write"


def test_pull_request_comment_is_updated_not_duplicated_and_skipped_for_forks():
    job = JOBS["comment"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    script = job["steps"][-1]["run"]
    assert "<!-- quantpipe-report -->" in script
    assert "-X PATCH" in script
    assert "-X POST" in script


def test_tests_run_on_every_supported_python_with_lint():
    job = JOBS["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    steps = job["steps"]
    assert index(steps, runs("ruff check"), "linting") < index(steps, runs("pytest"), "testing")
    cache = steps[index(steps, uses("actions/cache"), "caching the data")]
    assert cache["with"]["key"].startswith("cal-housing-aaa5c9a6")  # the archive's sha256


@pytest.mark.parametrize("job", sorted(JOBS))
def test_actions_are_pinned_to_major_versions_and_no_secret_but_the_token(job):
    for step in JOBS[job]["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
    text = yaml.safe_dump(JOBS[job])
    assert set(re.findall(r"secrets\.(\w+)", text)) <= {"GITHUB_TOKEN"}


def test_the_workflow_runs_the_steps_that_ci_run_runs():
    workflow = (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text()
    local = (REPO_ROOT / ".ci" / "run").read_text()
    for step in ("reproduce", "report", "plots", "gate", "container"):
        assert f".ci/steps {step}" in workflow
        assert f".ci/steps {step}" in local


def test_the_scheduled_drift_check_runs_the_monitor_and_fails_on_an_alert():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "monitor.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert {"schedule", "workflow_dispatch"} <= set(triggers)
    steps = workflow["jobs"]["drift"]["steps"]
    check = index(steps, runs("quantpipe monitor --batch"), "running the monitor")
    assert "continue-on-error" not in steps[check]  # an alert fails the run
    report = index(steps, runs("GITHUB_STEP_SUMMARY"), "reporting")
    assert check < report
    assert "cancelled()" in steps[report]["if"]  # the report is written even on an alert


def test_the_sweep_fans_a_grid_out_and_collects_every_experiment():
    """sweep.yml: a dispatch with a grid (widths, schemes, seeds), one job per cell that runs
    and pushes its experiment, and one last job that pulls them all into the summary."""
    sweep = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "sweep.yml").read_text())
    triggers = sweep[True]  # YAML 1.1 reads the key `on` as true
    assert list(triggers) == ["workflow_dispatch"]
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"widths", "schemes", "seeds"}
    assert sweep["permissions"] == {"contents": "write"}
    experiment, table = sweep["jobs"]["experiment"], sweep["jobs"]["table"]
    assert experiment["strategy"]["matrix"] == {
        "bits": "${{ fromJSON(inputs.widths) }}",
        "scheme": "${{ fromJSON(inputs.schemes) }}",
        "seed": "${{ fromJSON(inputs.seeds) }}",
    }
    runs = "\n".join(step.get("run", "") for step in experiment["steps"])
    assert "dvc exp run --pull" in runs
    assert "dvc exp push --run-cache origin\nquantpipe share" in runs
    assert table["needs"] == "experiment"
    collect = "\n".join(step.get("run", "") for step in table["steps"])
    assert "dvc exp pull origin" in collect
    assert "dvc exp show --md" in collect
    assert "GITHUB_STEP_SUMMARY" in collect


def test_the_pull_request_report_shows_the_plot_images_from_the_ci_plots_branch():
    job = JOBS["comment"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = job["steps"]
    download = index(steps, uses("actions/download-artifact"), "downloading the report")
    publish = index(steps, runs("git push -q origin HEAD:ci-plots"), "publishing the images")
    assert steps[publish]["continue-on-error"] is True  # the report is posted regardless
    post = index(steps, runs("comments"), "posting the comment")
    assert download < publish < post
    assert "plots/images/index.md" in steps[publish]["run"]
    assert ">> ../report.md" in steps[publish]["run"]
