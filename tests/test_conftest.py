"""The tests find the real data where the fetch stage, a user or the shared folder keeps it."""

from __future__ import annotations

import pytest

from tests.conftest import ARCHIVE, find_data_home, require_data_home


def _with_cache(folder):
    folder.mkdir(parents=True)
    (folder / ARCHIVE).write_bytes(b"x")
    return folder


def test_quantpipe_data_comes_first(tmp_path):
    mine = _with_cache(tmp_path / "mine")
    _with_cache(tmp_path / "home" / ".cache" / "quantpipe")
    env = {"QUANTPIPE_DATA": str(mine), "QUANTPIPE_SHARED_DATA": str(tmp_path / "none")}
    assert find_data_home(env, tmp_path / "home") == (mine, "")


def test_the_default_is_the_users_cache_folder(tmp_path):
    default = _with_cache(tmp_path / "home" / ".cache" / "quantpipe")
    env = {"QUANTPIPE_SHARED_DATA": str(tmp_path / "none")}
    assert find_data_home(env, tmp_path / "home") == (default, "")


def test_the_shared_copy_is_the_last_resort(tmp_path):
    shared = _with_cache(tmp_path / "shared")
    env = {"QUANTPIPE_SHARED_DATA": str(tmp_path / "shared")}
    assert find_data_home(env, tmp_path / "home") == (shared, "")


def test_nowhere_says_where_it_looked_and_how_to_provide_it(tmp_path):
    env = {"QUANTPIPE_DATA": str(tmp_path / "a"), "QUANTPIPE_SHARED_DATA": str(tmp_path / "b")}
    folder, message = find_data_home(env, tmp_path)
    assert folder is None
    assert str(tmp_path / "a") in message
    assert str(tmp_path / "b") in message
    assert "python -m stages.fetch" in message
    assert "set QUANTPIPE_DATA" in message


def test_without_the_data_a_user_gets_a_skip_with_the_reason(tmp_path):
    env = {"QUANTPIPE_DATA": str(tmp_path / "a"), "QUANTPIPE_SHARED_DATA": str(tmp_path / "b")}
    with pytest.raises(BaseException, match="set QUANTPIPE_DATA to a folder") as info:
        require_data_home(env, tmp_path)
    assert info.type is pytest.skip.Exception


def test_without_the_data_ci_fails(tmp_path):
    env = {
        "QUANTPIPE_DATA": str(tmp_path / "a"),
        "QUANTPIPE_SHARED_DATA": str(tmp_path / "b"),
        "CI": "true",
    }
    with pytest.raises(BaseException, match="is in none of") as info:  # a skip would pass
        require_data_home(env, tmp_path)
    assert info.type is pytest.fail.Exception


def test_with_the_data_the_folder_is_returned(tmp_path):
    folder = _with_cache(tmp_path / "mine")
    assert require_data_home({"QUANTPIPE_DATA": str(folder), "CI": "true"}, tmp_path) == folder
