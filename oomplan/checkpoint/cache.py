"""oomplan's cache of resolved header tables: $OOMPLAN_CACHE_DIR, else $XDG_CACHE_HOME/oomplan, else
~/.cache/oomplan; one JSON file per repo and commit (hub/models--org--name/<sha>.json), written atomically.
The only file oomplan writes when reading a checkpoint (besides the Hugging Face cache's config.json/index).

An entry records VERSION and whether the repo lists hf_quant_config.json (ModelOpt <= 0.29's quantisation, fetched into
the HF cache next to config.json since oomplan reads it). Entries of an older version (bare tables, written before that
file was read, whose snapshot never got it) and entries whose snapshot lacks the file they say the repo has are stale:
the repo is resolved again online, which fetches it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from oomplan.specs.checkpoint import Checkpoint

MAX_CACHE_FILE_BYTES = 256 * 1024**2
VERSION = 2  # 1 (implicit): a bare Checkpoint, written before hf_quant_config.json was read
HF_QUANT_FILE = "hf_quant_config.json"  # the same name as oomplan/profiles.py's


def cache_dir() -> Path:
    if os.environ.get("OOMPLAN_CACHE_DIR"):
        return Path(os.environ["OOMPLAN_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "oomplan"


def _path(repo: str, sha: str) -> Path:
    return cache_dir() / "hub" / ("models--" + repo.replace("/", "--")) / f"{sha}.json"


def load(repo: str, sha: str, snapshot: Path | None = None) -> Checkpoint | None:
    """The cached table, or None (absent, unreadable or stale entries are ignored and re-resolved). With the HF cache's
    `snapshot` folder: stale too when the repo has hf_quant_config.json and the snapshot does not hold it."""
    path = _path(repo, sha)
    try:
        if not path.is_file() or path.stat().st_size > MAX_CACHE_FILE_BYTES:
            return None
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("version") != VERSION or not isinstance(entry.get("hf_quant_config"), bool):
            return None
        if entry["hf_quant_config"] and snapshot is not None and not (snapshot / HF_QUANT_FILE).is_file():
            return None
        return Checkpoint.model_validate(entry.get("checkpoint"))
    except (OSError, ValueError, ValidationError):
        return None


def store(repo: str, sha: str, ck: Checkpoint, hf_quant_config: bool) -> None:
    """Best effort: a read-only cache folder only costs the next call its speed."""
    path = _path(repo, sha)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"version": VERSION, "hf_quant_config": hf_quant_config, "checkpoint": ck.model_dump(mode="json")}))
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
