"""The test homes' tmpfs folders (tests/tmpfs.py): a killed run's folder is found as stale, a live
run's and another user's are not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests import tmpfs


def test_only_folders_of_this_users_dead_runs_are_stale(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now (reused only after the kernel wraps around)
    uid = os.getuid()
    gone = tmpfs.basetemp(tmp_path, uid, dead.pid)
    live = tmpfs.basetemp(tmp_path, uid, os.getpid())
    other_user = tmpfs.basetemp(tmp_path, uid + 1, dead.pid)
    unrelated = tmp_path / f"{tmpfs.PREFIX}{uid}-notapid"
    for folder in (gone, live, other_user, unrelated):
        folder.mkdir()
    assert tmpfs.stale(tmp_path, uid) == [gone]
    assert live.name == f"c360-pytest-{uid}-{os.getpid()}"


def test_a_folder_too_small_or_missing_is_not_used(tmp_path):
    assert not tmpfs.usable(tmp_path / "missing")
    free = shutil.disk_usage(tmp_path).free
    assert tmpfs.usable(tmp_path) is (free >= tmpfs.MIN_FREE)
