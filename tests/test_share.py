"""`quantpipe share`: the run-cache's records, and one line when there is no repository."""

from __future__ import annotations

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
    assert err.startswith(f"error: {tmp_path}: not a DVC repository")
    assert err.count("\n") == 1


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--remote" in capsys.readouterr().out
