"""Atomic writes: a reader, or a run stopped halfway, sees the old file or the new one whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` through a temporary file in the same folder and
    ``os.replace``; the folder is made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves no empty file
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are results, for reading
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
