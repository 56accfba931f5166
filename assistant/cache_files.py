"""Cache files: written aside and renamed into place, so a reader never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def replace_cache_file(path: Path, write: Callable[[BinaryIO], None], *, stale: str) -> bool:
    """Writes `path` with `write(handle)`, then removes the files in its directory that match the glob `stale`
    (older versions of it). False when there was no room (a full disk): nothing is left behind, and the cache
    is simply rebuilt next time."""
    partial = path.with_suffix(f".{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            write(handle)
        os.replace(partial, path)
        for old in path.parent.glob(stale):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        partial.unlink(missing_ok=True)
        return False
    return True
