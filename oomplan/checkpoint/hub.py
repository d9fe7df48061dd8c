"""Hugging Face repo ids (`org/name`, `org/name@revision`) through huggingface_hub, never the weights.

Resolution (after shipped/user profile aliases, oomplan/profiles.py): the local Hugging Face cache
first, which works offline (HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE are read when called), then the
hub: config.json, model.safetensors.index.json and each shard's safetensors header by range request
(HfApi.parse_safetensors_file_metadata). The header table is kept in oomplan's cache
(oomplan/checkpoint/cache.py) next to the HF cache's config.json, so a second call is fast and works
offline. Tokens: HF_TOKEN or the saved `hf auth login`. Errors: gated (401/403) and missing (404)
repos exit 2; no network, timeouts and offline-and-not-cached exit 3.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from oomplan.errors import InputError, RuntimeFailure, did_you_mean
from oomplan.specs.checkpoint import Checkpoint
from oomplan.specs.model import ModelSpec

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
REPO_ID = re.compile(rf"{_NAME}/{_NAME}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
DEFAULT_TIMEOUT_S = 10.0
HF_QUANT_FILE = "hf_quant_config.json"  # the same name as oomplan/profiles.py's (imported lazily there)


def _shown(text: str) -> str:
    """A user's value, safe to print on one line."""
    return repr(text[:120].encode("ascii", "backslashreplace").decode())


def parse_repo_ref(ref: str, revision: str | None = None, flag: str = "MODEL") -> tuple[str, str | None] | None:
    """'org/name' / 'org/name@rev' -> (repo_id, revision); None when `ref` is not shaped like a repo id.
    A URL or a name with '..' is refused (exit 2) rather than guessed at."""
    text = ref.strip()
    if "://" in text or text.lower().startswith(("huggingface.co/", "hf.co/", "www.")):
        raise InputError(f"{flag}: {_shown(text)} is a URL; give the repo id as org/name (e.g. Qwen/Qwen3-8B)")
    repo, sep, rev = text.partition("@")
    if ".." in repo or "--" in repo:
        raise InputError(f"{flag}: {_shown(text)}: a repo id may not contain '..' or '--'; give it as org/name")
    if not REPO_ID.fullmatch(repo):
        return None
    if sep and revision and rev != revision:
        raise InputError(f"{flag}: {_shown(text)} names revision {_shown(rev)} but --revision says {_shown(revision)}")
    chosen = rev if sep else revision
    if chosen is not None and (not REVISION.fullmatch(chosen) or ".." in chosen):
        raise InputError(f"--revision: {_shown(chosen)} is not a branch, tag or commit")
    return repo, chosen


def _env_cache_dir() -> Path:
    """huggingface_hub's cache folder, from the environment now (huggingface_hub/constants.py)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _timeout() -> float:
    try:
        return float(os.environ.get("OOMPLAN_HUB_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise InputError(f"OOMPLAN_HUB_TIMEOUT: {_shown(os.environ['OOMPLAN_HUB_TIMEOUT'])} is not a number of seconds") from None


def _import_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise RuntimeFailure("a Hugging Face repo id needs huggingface_hub: pip install 'oomplan[hub]'") from None
    return huggingface_hub


def _transport_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [OSError, TimeoutError]
    for module in ("httpx2", "httpx", "requests"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        for name in ("TransportError", "TimeoutException", "ConnectionError", "Timeout"):
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(getattr(mod, name))
    return tuple(found)


def _config_from(path: Path, repo: str, where: str) -> tuple[ModelSpec, str | None]:
    """The spec and config.json's quantization_config.quant_method (or the snapshot's hf_quant_config.json's)."""
    from oomplan.families import parse_hf_config
    from oomplan.profiles import _expect_mapping, parse_checkpoint_config, quant_method
    from oomplan.safeio import read_json

    raw = _expect_mapping(read_json(path, "config.json"), path, "config.json")
    spec, raw = parse_checkpoint_config(
        raw, path.parent, lambda r: parse_hf_config(r, repo.split("/")[-1], where, hf_repo=repo, where=f"{repo}: config.json"))
    return spec, quant_method(raw)


def _from_snapshot(repo: str, snapshot: Path, where: str) -> ModelSpec:
    """A cached snapshot: its config.json, and the header table from the snapshot's own safetensors files
    (a downloaded model) or from oomplan's cache of what was resolved earlier."""
    from oomplan.checkpoint import cache
    from oomplan.profiles import with_safetensors

    spec, quant = _config_from(snapshot / "config.json", repo, where)
    if any(snapshot.glob("*.safetensors")):
        return with_safetensors(spec, snapshot, where, quant)
    ck = cache.load(repo, snapshot.name, snapshot)
    if ck is not None:
        return spec.model_copy(update={"checkpoint": ck.model_copy(update={"quant_method": quant})})
    return spec.model_copy(update={"warnings": spec.warnings + (
        f"{where}: the safetensors headers are not cached; weights from config arithmetic (run once online to read them)",)})


def resolve_repo(repo: str, revision: str | None, flag: str = "MODEL") -> ModelSpec:
    """The repo's spec (HF cache, then the hub), carrying the revision asked for so plan files and engine
    commands keep it."""
    spec = _resolve_repo(repo, revision, flag)
    return spec if revision is None else spec.model_copy(update={"hf_revision": revision})


def _resolve_repo(repo: str, revision: str | None, flag: str) -> ModelSpec:
    hub = _import_hub()
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    rev = revision or "main"
    where = f"{repo}@{rev}"
    cache_dir = _env_cache_dir()
    # 1. the local HF cache: works offline
    try:
        cached = hub.hf_hub_download(repo, "config.json", revision=rev, cache_dir=cache_dir, local_files_only=True)
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError, ValueError):
        cached = None
    if cached is not None:
        snapshot = Path(cached).parent
        from oomplan.checkpoint import cache

        if _offline() or any(snapshot.glob("*.safetensors")) or cache.load(repo, snapshot.name, snapshot) is not None:
            return _from_snapshot(repo, snapshot, f"{repo}@{snapshot.name[:12]} (Hugging Face cache)")
    if _offline():
        raise RuntimeFailure(f"{flag}: {where}: offline (HF_HUB_OFFLINE) and not cached in {cache_dir}")
    # 2. the hub
    token, timeout, endpoint = hub.get_token(), _timeout(), _endpoint()
    api = hub.HfApi(endpoint=endpoint, token=token)
    try:
        info = api.model_info(repo, revision=rev, timeout=timeout)
        sha = info.sha or rev
        files = {s.rfilename for s in (info.siblings or ())}
        # by the name asked for, so the HF cache records refs/<rev> -> sha for offline use
        config = hub.hf_hub_download(repo, "config.json", revision=rev, cache_dir=cache_dir, token=token, endpoint=endpoint,
                                     etag_timeout=timeout)
        sha = Path(config).parent.name if info.sha else sha
        if HF_QUANT_FILE in files:  # ModelOpt <= 0.29 declares its quantisation there (oomplan/profiles.py)
            try:
                hub.hf_hub_download(repo, HF_QUANT_FILE, revision=sha, cache_dir=cache_dir, token=token, endpoint=endpoint,
                                    etag_timeout=timeout)
            except EntryNotFoundError:  # listed but gone: the config alone, as for a repo without one
                pass
        ck = _remote_headers(hub, api, repo, sha, files, cache_dir, token, endpoint, timeout)
    except GatedRepoError:
        raise InputError(f"{flag}: {repo} is gated: accept the licence at {endpoint}/{repo} and set HF_TOKEN "
                         f"(or run `hf auth login`){'' if token is None else '; the token given has no access'}") from None
    except RevisionNotFoundError:
        raise InputError(f"{flag}: {repo} has no revision {_shown(rev)}") from None
    except RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise InputError(f"{flag}: {repo} is private or gated: accept the licence at {endpoint}/{repo} and set HF_TOKEN "
                             "(or run `hf auth login`)") from None
        raise InputError(f"{flag}: no model named {repo!r} on {endpoint} (not a shipped profile either){_suggest(repo)}") from None
    except EntryNotFoundError:
        raise InputError(f"{flag}: {where} has no config.json; is it a transformers model?") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise InputError(f"{flag}: {repo} is gated: accept the licence at {endpoint}/{repo} and set HF_TOKEN") from None
        raise RuntimeFailure(f"{flag}: {where}: the hub answered HTTP {status}") from None
    except LocalEntryNotFoundError:
        raise RuntimeFailure(f"{flag}: {where}: offline and not cached (could not reach {endpoint})") from None
    except _transport_errors() as exc:
        kind = "timed out" if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower() else "unreachable"
        raise RuntimeFailure(f"{flag}: {where}: offline and not cached ({endpoint} {kind}; OOMPLAN_HUB_TIMEOUT={timeout:g}s)") from None
    spec, quant = _config_from(Path(config), repo, f"{repo}@{sha[:12]}")
    if ck is None:
        return spec.model_copy(update={"warnings": spec.warnings + (f"{where}: no safetensors files; weights from config arithmetic",)})
    from oomplan.checkpoint import cache

    cache.store(repo, sha, ck, HF_QUANT_FILE in files)
    return spec.model_copy(update={"checkpoint": ck.model_copy(update={"quant_method": quant})})


def _remote_headers(hub, api, repo: str, sha: str, files: set[str], cache_dir: Path, token, endpoint: str, timeout: float) -> Checkpoint | None:
    """Each shard's header by range request; the index (if sharded) through the HF cache. Never the weights."""
    from huggingface_hub.errors import SafetensorsParsingError

    from oomplan.checkpoint.safetensors_files import INDEX_FILE, SINGLE_FILE, shard_names, tensors_from_header
    from oomplan.specs.checkpoint import CheckpointFile

    if INDEX_FILE in files:
        index = hub.hf_hub_download(repo, INDEX_FILE, revision=sha, cache_dir=cache_dir, token=token, endpoint=endpoint, etag_timeout=timeout)
        names = shard_names(Path(index).parent) or []
    elif SINGLE_FILE in files:
        names = [SINGLE_FILE]
    else:
        names = sorted(f for f in files if f.endswith(".safetensors") and "/" not in f)
    if not names:
        return None
    tensors, out_files = [], []
    for name in names:
        try:
            meta = api.parse_safetensors_file_metadata(repo, name, revision=sha, token=token, timeout=timeout)
        except SafetensorsParsingError as exc:
            reason = str(exc).split(": ", 1)[-1].split(". Please")[0]
            raise InputError(f"{repo}@{sha[:12]}: {name}: not a valid safetensors file: {reason}") from None
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            raise InputError(f"{repo}@{sha[:12]}: {name}: not a valid safetensors file: the header is not a JSON object of tensors") from None
        t = tensors_from_header(meta.tensors, name, None)
        tensors += t
        out_files.append(CheckpointFile(name=name, size_bytes=sum(x.nbytes for x in t), num_tensors=len(t)))
    return Checkpoint(kind="safetensors", location=f"{repo}@{sha}", files=tuple(out_files), tensors=tuple(tensors))


def _suggest(repo: str) -> str:
    from oomplan.profiles import profile_keys

    keys = profile_keys("model_profiles")
    hint = did_you_mean(repo, [k for k in keys if "/" in k])
    return hint or did_you_mean(repo.split("/")[-1], sorted(set(keys.values())))
