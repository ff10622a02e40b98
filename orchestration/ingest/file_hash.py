"""The content hash that identifies a landing file (local or mirrored from object storage), and
the stat signature that lets a later run trust that hash without reading the file again."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

# A file modified this close to when its bytes were hashed may be written again within the same
# timestamp tick: its stat signature then proves nothing and it is hashed again next time (git's
# "racy clean" rule).
RACY_NS = 2_000_000_000


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def stat_signature(st: os.stat_result) -> tuple[int, ...]:
    """Size, mtime, ctime, inode and device: an in-place write changes the ctime, a replacement
    the inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def settled_signature(path: Path, written: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The stat signature of `path` if it is still `written` (the signature taken right after
    this process wrote the bytes it hashed) and that write is at least RACY_NS old, so no later
    write can share its timestamp; else None (the file is hashed again next time)."""
    if written is None:
        return None
    try:
        signature = stat_signature(path.stat())
    except FileNotFoundError:
        return None
    if signature != written or time.time_ns() - signature[1] < RACY_NS:
        return None
    return signature
