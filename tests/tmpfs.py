"""pytest's base folder on tmpfs (tests/conftest.py): every night's warehouse, Dagster's SQLite
event log, Postgres' and Spark's files commit with fsync, which on tmpfs costs nothing
(docs/benchmarks.md, "The test suite on two workers"). One folder per pytest process, named by
its user and pid; a run's own folder is removed when it ends, and the folders of runs that were
killed (their end never ran) when the next run starts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TMPFS = Path("/dev/shm")
MIN_FREE = 8 * 2**30  # a whole `make test` writes ~3 GB
PREFIX = "c360-pytest-"


def usable(root: Path = TMPFS) -> bool:
    """Whether `root` is a writable folder with MIN_FREE bytes free."""
    return root.is_dir() and os.access(root, os.W_OK) and shutil.disk_usage(root).free >= MIN_FREE


def basetemp(root: Path = TMPFS, uid: int | None = None, pid: int | None = None) -> Path:
    """The base folder of the pytest process `pid` of user `uid` (default: this one)."""
    uid = os.getuid() if uid is None else uid
    return root / f"{PREFIX}{uid}-{os.getpid() if pid is None else pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def stale(root: Path = TMPFS, uid: int | None = None) -> list[Path]:
    """The base folders of this user's earlier runs whose process is gone."""
    uid = os.getuid() if uid is None else uid
    found = []
    for path in sorted(root.glob(f"{PREFIX}{uid}-*")):
        pid = path.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            found.append(path)
    return found
