"""oomplan's cache of resolved header tables: $OOMPLAN_CACHE_DIR, else $XDG_CACHE_HOME/oomplan, else
~/.cache/oomplan; one JSON file per repo and commit (hub/models--org--name/<sha>.json), written atomically.
The only file oomplan writes when reading a checkpoint (besides the Hugging Face cache's config.json/index)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from oomplan.specs.checkpoint import Checkpoint

MAX_CACHE_FILE_BYTES = 256 * 1024**2


def cache_dir() -> Path:
    if os.environ.get("OOMPLAN_CACHE_DIR"):
        return Path(os.environ["OOMPLAN_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "oomplan"


def _path(repo: str, sha: str) -> Path:
    return cache_dir() / "hub" / ("models--" + repo.replace("/", "--")) / f"{sha}.json"


def load(repo: str, sha: str) -> Checkpoint | None:
    """The cached table, or None (absent, unreadable or stale entries are ignored and re-resolved)."""
    path = _path(repo, sha)
    try:
        if not path.is_file() or path.stat().st_size > MAX_CACHE_FILE_BYTES:
            return None
        return Checkpoint.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def store(repo: str, sha: str, ck: Checkpoint) -> None:
    """Best effort: a read-only cache folder only costs the next call its speed."""
    path = _path(repo, sha)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ck.model_dump_json())
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
