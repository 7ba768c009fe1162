"""The tests find the real data where scikit-learn, a user or the shared folder keeps it."""

from __future__ import annotations

import pytest

from tests.conftest import CACHE_FILE, find_data_home, require_data_home


def _with_cache(folder):
    folder.mkdir(parents=True)
    (folder / CACHE_FILE).write_bytes(b"x")
    return folder


def test_scikit_learn_data_comes_first(tmp_path):
    mine = _with_cache(tmp_path / "mine")
    _with_cache(tmp_path / "home" / "scikit_learn_data")
    env = {"SCIKIT_LEARN_DATA": str(mine), "QUANTPIPE_SHARED_DATA": str(tmp_path / "none")}
    assert find_data_home(env, tmp_path / "home") == (mine, "")


def test_the_home_folder_is_scikit_learns_default(tmp_path):
    default = _with_cache(tmp_path / "home" / "scikit_learn_data")
    env = {"QUANTPIPE_SHARED_DATA": str(tmp_path / "none")}
    assert find_data_home(env, tmp_path / "home") == (default, "")


def test_the_shared_copy_is_the_last_resort(tmp_path):
    shared = _with_cache(tmp_path / "shared" / "scikit_learn_data")
    env = {"QUANTPIPE_SHARED_DATA": str(tmp_path / "shared")}
    assert find_data_home(env, tmp_path / "home") == (shared, "")


def test_nowhere_says_where_it_looked_and_how_to_provide_it(tmp_path):
    env = {"SCIKIT_LEARN_DATA": str(tmp_path / "a"), "QUANTPIPE_SHARED_DATA": str(tmp_path / "b")}
    folder, message = find_data_home(env, tmp_path)
    assert folder is None
    assert str(tmp_path / "a") in message
    assert str(tmp_path / "b" / "scikit_learn_data") in message
    assert "python -m stages.fetch" in message
    assert "set SCIKIT_LEARN_DATA" in message


def test_without_the_data_a_user_gets_a_skip_with_the_reason(tmp_path):
    env = {"SCIKIT_LEARN_DATA": str(tmp_path / "a"), "QUANTPIPE_SHARED_DATA": str(tmp_path / "b")}
    with pytest.raises(BaseException, match="set SCIKIT_LEARN_DATA to a folder") as info:
        require_data_home(env, tmp_path)
    assert info.type is pytest.skip.Exception


def test_without_the_data_ci_fails(tmp_path):
    env = {
        "SCIKIT_LEARN_DATA": str(tmp_path / "a"),
        "QUANTPIPE_SHARED_DATA": str(tmp_path / "b"),
        "CI": "true",
    }
    with pytest.raises(BaseException, match="is in none of") as info:  # a skip would pass
        require_data_home(env, tmp_path)
    assert info.type is pytest.fail.Exception


def test_with_the_data_the_folder_is_returned(tmp_path):
    folder = _with_cache(tmp_path / "mine")
    assert require_data_home({"SCIKIT_LEARN_DATA": str(folder), "CI": "true"}, tmp_path) == folder
