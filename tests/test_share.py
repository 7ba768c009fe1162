"""`quantpipe share`: the run-cache's records, and one line when there is no repository."""

from __future__ import annotations

import sys

import pytest

from quantpipe.share import main, run_entries


def test_run_entries_are_every_record_of_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    for key, values in {"ab12": ["v1", "v2"], "cd34": ["v3"]}.items():
        (runs / key[:2] / key).mkdir(parents=True)
        for value in values:
            (runs / key[:2] / key / value).write_text("cmd: x\n")
    (runs / "ab" / "README").write_text("not a record")  # a stray file, no key folder
    (runs / "zz" / "ab99").mkdir(parents=True)  # a key under the wrong prefix
    (runs / "zz" / "ab99" / "v9").write_text("cmd: x\n")
    assert run_entries(runs) == [("ab12", "v1"), ("ab12", "v2"), ("cd34", "v3")]
    assert run_entries(tmp_path / "missing") == []


def test_outside_a_dvc_repository_it_says_so_in_one_line(tmp_path, capsys):
    assert main(["--repo", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open the DVC repository at {tmp_path}: ")
    assert err.count("\n") == 1


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--remote" in capsys.readouterr().out


def _metric_project(path):
    """A project whose one stage writes a metric git keeps (cache: false) and a cached out."""
    from tests.remotes import commit, dvc, run

    path.mkdir()
    (path.parent / "home").mkdir(exist_ok=True)
    run("git", "init", "-q", "-b", "main", cwd=path)
    dvc("init", "-q", cwd=path)
    (path / "params.yaml").write_text("n: 1\n")
    (path / "score.py").write_text(
        "import json\nimport yaml\n\nn = yaml.safe_load(open('params.yaml'))['n']\n"
        "json.dump({'n': n}, open('score.json', 'w'))\nopen('model.txt', 'w').write(str(n))\n"
    )
    (path / "dvc.yaml").write_text(
        "stages:\n  score:\n    cmd: python score.py\n    deps:\n      - score.py\n"
        "    params:\n      - n\n    outs:\n      - model.txt\n"
        "    metrics:\n      - score.json:\n          cache: false\n"
    )
    dvc("repro", "-q", cwd=path)
    commit(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True])
def test_another_clone_restores_a_stage_with_git_kept_outputs_only_after_share(tmp_path, shared):
    """`dvc exp push --run-cache` leaves the metric's object behind: the other clone runs the
    stage again, unless `quantpipe share` pushed it."""
    from tests.remotes import clone, dvc, run

    storage = tmp_path / "storage"
    one = _metric_project(tmp_path / "one")
    dvc("remote", "add", "--local", "-d", "team", storage, cwd=one)
    dvc("push", cwd=one)  # the committed outputs
    dvc("exp", "run", "-q", "-S", "n=2", cwd=one)  # the run another clone will ask for
    dvc("push", "--run-cache", cwd=one)
    if shared:
        shared_run = run(sys.executable, "-m", "quantpipe.cli", "share", cwd=one)
        assert "recorded runs: " in shared_run.stderr
    other = clone(one, tmp_path / "other")
    dvc("remote", "add", "--local", "-d", "team", storage, cwd=other)
    dvc("pull", "--run-cache", cwd=other)
    again = dvc("exp", "run", "--pull", "-S", "n=2", cwd=other).stdout
    if shared:
        assert "Stage 'score' is cached - skipping run" in again
        assert "Running stage" not in again
    else:
        assert "Running stage 'score'" in again
    assert (other / "score.json").read_text() == '{"n": 2}'
