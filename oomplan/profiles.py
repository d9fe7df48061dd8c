"""Find and read profiles: a path (config.json, a folder holding one, a profile YAML),
a shipped profile (model_profiles/, hardware_profiles/) or one in the user folder
($OOMPLAN_PROFILE_DIR or ~/.config/oomplan/{model_profiles,hardware_profiles}).
"""
from __future__ import annotations

import difflib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from oomplan.errors import InputError, ProfileNotFoundError, RuntimeFailure, did_you_mean
from oomplan.specs.base import Strict
from oomplan.specs.hardware import GpuSpec
from oomplan.families import parse_hf_config
from oomplan.specs.model import ModelSpec

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 16 * 1024**2  # a config.json is a few KiB; refuse anything absurd


class ModelProfileFile(Strict):
    """model_profiles/<name>.yaml: a model's HF config.json plus where it came from."""

    schema_version: Literal[1] = 1
    name: str
    display_name: str
    aliases: tuple[str, ...] = ()
    hf_repo: str
    source: str
    config: dict[str, Any]


@lru_cache(maxsize=4)
def _data_dir(kind: str) -> Path:
    """The shipped folder of one kind ('model_profiles' or 'hardware_profiles'), on every kind of install.

    - wheel / sdist / `pip install .`: setup.py's package_dir puts the YAMLs in site-packages/oomplan/<kind>/,
      a folder without __init__.py beside the code; `files("oomplan")` is the package's real folder.
    - a checkout (tests, PYTHONPATH): the folder at the repository root.
    - editable install: setuptools maps the namespace package oomplan.<kind> to the checkout's root folder;
      its spec's submodule_search_locations name it. (`files("oomplan.<kind>")` of such a namespace
      package is a MultiplexedPath whose str() is not a path: the bug this function once had.)
    A missing folder is a broken install, never an empty list of profiles.
    """
    from importlib.resources import files
    from importlib.util import find_spec

    candidates: list[Path] = []
    package = files("oomplan")
    if isinstance(package, Path):
        candidates.append(package / kind)
    candidates.append(Path(__file__).resolve().parent.parent / kind)
    try:
        spec = find_spec(f"oomplan.{kind}")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        candidates += [Path(loc) for loc in spec.submodule_search_locations or ()]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    raise RuntimeFailure(
        f"shipped {kind} not found (looked in {', '.join(str(c) for c in candidates)}): "
        "the oomplan install is incomplete; reinstall it"
    )


def _user_dirs(kind: str) -> list[Path]:
    base = os.environ.get("OOMPLAN_PROFILE_DIR")
    folder = Path(base) if base else Path.home() / ".config" / "oomplan"
    return [folder / kind] if (folder / kind).is_dir() else []


def read_text(path: Path, what: str) -> str:
    """Read a small UTF-8 text file, with one-line errors for every way it can fail."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a {what} file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {size} bytes is too large for a {what} (limit {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: not readable (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if not data.strip():
        raise InputError(f"{path}: file is empty, expected a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); expected a {what}") from None


def read_yaml(path: Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise InputError(f"{path}: invalid YAML{where}: {problem}") from None


def read_json(path: Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def validation_message(path: Path | str, exc: ValidationError, known: tuple[str, ...] = ()) -> str:
    """First pydantic error as one line: file, field, what is wrong, the value given. An unknown key
    comes first: a typo'd key is also why a required field looks missing."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        return f"{path}: unknown field {field!r}{did_you_mean(key, list(known))}"
    if err["type"] == "missing":
        return f"{path}: missing required field {field!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: field {field!r}: {msg} (got {err.get('input')!r})"


def _expect_mapping(data: Any, path: Path, what: str) -> dict:
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a {what} mapping at the top level, got {type(data).__name__}")
    return data


@lru_cache(maxsize=8)
def _index(kind: str) -> dict[str, Path]:
    """lowercased name/alias -> profile file, shipped first, user folder overriding."""
    index: dict[str, Path] = {}
    for folder in [_data_dir(kind), *_user_dirs(kind)]:
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
            if isinstance(data, dict):
                for key in [data.get("name", path.stem), *data.get("aliases", ())]:
                    index[str(key).lower()] = path
    return index


def profile_names(kind: str) -> list[str]:
    """Canonical names (file stems are names) of the profiles of one kind."""
    return sorted({p.stem for p in _index(kind).values()})


def profile_keys(kind: str) -> dict[str, str]:
    """Every lowercased name and alias of the profiles of one kind -> the profile's canonical name."""
    return {key: path.stem for key, path in _index(kind).items()}


def _find(kind: str, ref: str, what: str, flag: str) -> Path:
    key = ref.strip().lower()
    for folder in [*reversed(_user_dirs(kind)), _data_dir(kind)]:  # a file named like the profile: no scan
        if (folder / f"{key}.yaml").is_file() and "/" not in key:
            return folder / f"{key}.yaml"
    index = _index(kind)
    if key in index:
        return index[key]
    names = profile_names(kind)
    close = [index[k].stem for k in difflib.get_close_matches(key, list(index), n=8, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:3]
    hint = f" (did you mean: {', '.join(close)}?)" if close else f"; known: {', '.join(names)}"
    raise ProfileNotFoundError(f"{flag}: no {what} named {ref!r} (not a shipped profile, user profile or path){hint}")


def _model_from_profile(path: Path) -> ModelSpec:
    data = _expect_mapping(read_yaml(path, "model profile"), path, "model profile")
    try:
        prof = ModelProfileFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(path, exc, tuple(ModelProfileFile.model_fields))) from None
    return parse_hf_config(prof.config, prof.name, prof.source, prof.hf_repo, where=str(path))


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".json", ".yaml", ".yml")) or ref.startswith((".", "/", "~")) or os.sep in ref and Path(ref).exists()


def load_model(ref: str, flag: str = "MODEL") -> ModelSpec:
    """A shipped/user profile name or alias, a config.json, a folder holding one, or a profile YAML."""
    path = Path(ref).expanduser()
    if path.exists() or _looks_like_path(ref):
        if path.is_dir():
            path = path / "config.json"
            if not path.exists():
                raise InputError(f"{flag}: folder {ref!r} holds no config.json")
        if path.suffix in (".yaml", ".yml"):
            return _model_from_profile(path)
        raw = _expect_mapping(read_json(path, "config.json"), path, "config.json")
        name = path.parent.name if path.name == "config.json" else path.stem
        return parse_hf_config(raw, name or str(path), str(path))
    return _model_from_profile(_find("model_profiles", ref, "model", flag))


def load_gpu_file(path: Path) -> GpuSpec:
    data = _expect_mapping(read_yaml(path, "GPU profile"), path, "GPU profile")
    try:
        return GpuSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(path, exc, tuple(GpuSpec.model_fields))) from None


def load_gpu(ref: str, flag: str = "--gpu") -> GpuSpec:
    """A shipped/user GPU profile name or alias, or a path to a GPU profile YAML."""
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_gpu_file(path)
    return load_gpu_file(_find("hardware_profiles", ref, "GPU", flag))
