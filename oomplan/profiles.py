"""Find and read profiles: a path (config.json, a folder holding one, a profile YAML),
a shipped profile (model_profiles/, hardware_profiles/) or one in the user folder
($OOMPLAN_PROFILE_DIR or ~/.config/oomplan/{model_profiles,hardware_profiles}).
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from oomplan.errors import InputError, ProfileNotFoundError, RuntimeFailure
from oomplan.safeio import (
    MAX_INPUT_BYTES, exists, expand_user, is_dir, list_folder, load_yaml_text, probe, read_input_text, read_json, read_yaml,
)
from oomplan.specs.base import Strict
from oomplan.specs.convert import build_file, error_line
from oomplan.specs.hardware import GpuSpec
from oomplan.families import parse_hf_config
from oomplan.specs.model import ModelSpec
from oomplan.text import clean, shorten, warn_once

MAX_FILE_BYTES = MAX_INPUT_BYTES  # a config.json is a few KiB; refuse anything absurd


class ModelProfileFile(Strict):
    """model_profiles/<name>.yaml: a model's HF config.json plus where it came from."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    display_name: str = Field(max_length=200)
    aliases: tuple[str, ...] = ()
    hf_repo: str = Field(max_length=400)
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
    try:
        folder = Path(base) if base else Path.home() / ".config" / "oomplan"
    except (RuntimeError, KeyError, OSError):  # no home folder to be found
        return []
    return [folder / kind] if is_dir(folder / kind) else []


# The readers every layer uses (oomplan/safeio.py): bounded, regular files only, strict JSON/YAML.
read_text = read_input_text


def validation_message(path: Path | str, exc: ValidationError, known: tuple[str, ...] = ()) -> str:
    """First pydantic error as one line: file, field, what is wrong, the value given (oomplan/specs/convert.py)."""
    return error_line(exc, str(path), None, known)


def _expect_mapping(data: Any, path: Path, what: str) -> dict:
    if not isinstance(data, dict):
        raise InputError(f"{clean(str(path))}: expected a {what} mapping at the top level, got {type(data).__name__}")
    return data


_HEAD_KEYS = re.compile(r"^(name|aliases):")


def head_fields(text: str, where: str) -> Any:
    """The top-level `name:` and `aliases:` entries of a profile (with their continuation lines), parsed alone.
    Finding a GPU by alias read all 33 shipped hardware profiles in full, a sixth of a command's start-up
    (issue 16); tests/unit/test_profiles.py checks this equals the full parse for every shipped profile."""
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        if line[:1] not in ("", " ", "\t", "-", "#"):  # a new top-level key
            keep = bool(_HEAD_KEYS.match(line))
        if keep and not line.startswith("#"):
            kept.append(line)
    return load_yaml_text("\n".join(kept), where)


def _index_keys(path: Path, shipped: bool) -> list[str]:
    """The names a profile file answers to; a broken user profile is reported once and skipped."""
    try:
        data = (head_fields(read_input_text(path, "profile", MAX_INPUT_BYTES), str(path)) or {}) if shipped else read_yaml(path, "profile")
        if not isinstance(data, dict):
            raise InputError(f"{clean(str(path))}: expected a profile mapping at the top level, got {type(data).__name__}")
        name, aliases = data.get("name", path.stem), data.get("aliases", ())
        if not isinstance(name, str) or not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) for a in aliases):
            raise InputError(f"{clean(str(path))}: 'name' must be a string and 'aliases' a list of strings")
        return [name, *aliases]
    except InputError as exc:
        if shipped:
            raise
        warn_once(f"skipping user profile {exc}")
        return []


@lru_cache(maxsize=8)
def _index(kind: str) -> dict[str, Path]:
    """lowercased name/alias -> profile file, shipped first, user folder overriding."""
    index: dict[str, Path] = {}
    shipped = _data_dir(kind)
    for folder in [shipped, *_user_dirs(kind)]:
        for path in list_folder(folder, (".yaml",)):
            for key in _index_keys(path, folder == shipped):
                index[key.lower()] = path
    return index


def profile_names(kind: str) -> list[str]:
    """Canonical names (file stems are names) of the profiles of one kind."""
    return sorted({p.stem for p in _index(kind).values()})


def _load_all(kind: str, load: Any) -> list:
    """Every profile of one kind, loaded; a user profile that fails is reported once and skipped."""
    shipped, out = _data_dir(kind), []
    for path in sorted(set(_index(kind).values()), key=lambda p: p.stem):
        try:
            out.append(load(path))
        except InputError as exc:
            if path.parent == shipped:
                raise
            warn_once(f"skipping user profile {exc}")
    return out


def all_models() -> list[ModelSpec]:
    """Every shipped and user model profile (the catalogue); broken user profiles are skipped with a warning."""
    return _load_all("model_profiles", _model_from_profile)


def all_gpus() -> list[GpuSpec]:
    """Every shipped and user GPU profile; broken user profiles are skipped with a warning."""
    return _load_all("hardware_profiles", load_gpu_file)


def profile_keys(kind: str) -> dict[str, str]:
    """Every lowercased name and alias of the profiles of one kind -> the profile's canonical name."""
    return {key: path.stem for key, path in _index(kind).items()}


def _find(kind: str, ref: str, what: str, flag: str) -> Path:
    key = ref.strip().lower()
    for folder in [*reversed(_user_dirs(kind)), _data_dir(kind)]:  # a file named like the profile: no scan
        if "/" not in key and "\0" not in key and len(key) < 200 and exists(folder / f"{key}.yaml"):
            return folder / f"{key}.yaml"
    index = _index(kind)
    if key in index:
        return index[key]
    names = profile_names(kind)
    close = [index[k].stem for k in difflib.get_close_matches(key[:200], list(index), n=8, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:3]
    hint = f" (did you mean: {', '.join(close)}?)" if close else f"; known: {', '.join(names)}"
    raise ProfileNotFoundError(f"{flag}: no {what} named {shorten(ref, 120)!r} (not a shipped profile, user profile or path){hint}")


def _model_from_profile(path: Path) -> ModelSpec:
    prof = build_file(ModelProfileFile, read_yaml(path, "model profile"), path, "model profile")
    return parse_hf_config(prof.config, prof.name, prof.source, prof.hf_repo, where=str(path))


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".json", ".yaml", ".yml")) or ref.startswith((".", "/", "~")) or os.sep in ref and exists(ref)


def _check_ref(ref: str, flag: str) -> None:
    if not ref.strip():
        raise InputError(f"{flag}: empty; give a profile name or a path")
    if "\0" in ref:
        raise InputError(f"{flag}: {shorten(ref, 80)!r} holds a NUL byte; not a name or a path")


def _resolve(ref: str, flag: str, base: Path | None, path_like: bool) -> Path:
    """The path a ref names: ~ expanded (never raising), a relative one against `base` (a plan file's
    folder) when it is path-like or exists there (an HF repo id such as org/name stays a name)."""
    _check_ref(ref, flag)
    path = expand_user(ref, flag) if ref.startswith("~") else Path(ref)
    if base is not None and not path.is_absolute():
        candidate = base / path
        if path_like or exists(candidate):
            return candidate
    return path


def load_model(ref: str, flag: str = "MODEL", base: Path | None = None, revision: str | None = None) -> ModelSpec:
    """A shipped/user profile name or alias, a config.json, a folder holding one (with its safetensors headers),
    a GGUF file, a profile YAML, or a Hugging Face repo id `org/name[@revision]` (HF cache, then the hub).
    A relative path is taken relative to `base` when given (a plan file's folder)."""
    path = _resolve(ref, flag, base, _looks_like_path(ref))
    state = probe(path)
    if state.error and _looks_like_path(ref):
        raise InputError(f"{flag}: {shorten(path, 120)}: {state.error}")
    if revision is None and (state.exists or _looks_like_path(ref)):
        folder = path if state.is_dir else None
        if folder is not None:
            path = path / "config.json"
            if not exists(path):
                raise InputError(f"{flag}: folder {shorten(ref, 160)!r} holds no config.json")
        if path.suffix in (".yaml", ".yml"):
            return _model_from_profile(path)
        if path.suffix.lower() == ".gguf":
            return load_gguf(path)
        raw = _expect_mapping(read_json(path, "config.json"), path, "config.json")
        name = path.parent.name if path.name == "config.json" else path.stem
        if folder is None:  # a bare config.json: no checkpoint folder to read hf_quant_config.json from
            return parse_hf_config(raw, name or str(path), str(path))
        spec, raw = parse_checkpoint_config(raw, folder, lambda r: parse_hf_config(r, name or str(path), str(path)))
        return with_safetensors(spec, folder, quant=quant_method(raw))
    return load_named_model(ref, flag, revision)


def load_named_model(ref: str, flag: str = "MODEL", revision: str | None = None) -> ModelSpec:
    """A shipped/user profile alias, else a Hugging Face repo id (oomplan/checkpoint/hub.py: cache, then hub)."""
    from oomplan.checkpoint.hub import parse_repo_ref

    repo = parse_repo_ref(ref, revision, flag)
    if revision is None and (repo is None or repo[1] is None):
        try:
            return _model_from_profile(_find("model_profiles", ref, "model", flag))
        except ProfileNotFoundError:
            if repo is None:
                raise
    elif repo is None:
        raise InputError(f"--revision: {shorten(ref, 120)!r} is not a Hugging Face repo id (org/name)")
    from oomplan.checkpoint.hub import resolve_repo

    return resolve_repo(repo[0], repo[1], flag)


def load_gguf(path: Path) -> ModelSpec:
    """A GGUF file (or a split set): architecture from its metadata, weights from its tensor infos."""
    from oomplan.checkpoint.gguf_file import SPLIT, read_gguf

    raw, ck = read_gguf(path)
    m = SPLIT.match(path.name)
    name = m.group("stem") if m else path.stem
    spec = parse_hf_config(raw, name, str(path), where=f"{path} (GGUF metadata)")
    return spec.model_copy(update={"checkpoint": ck})


HF_QUANT_FILE = "hf_quant_config.json"


def read_hf_quant_config(raw: dict, path: Path) -> tuple[dict, str | None]:
    """config.json with a sibling hf_quant_config.json (ModelOpt <= 0.29) merged in as its quantization_config, and
    a note saying so; unchanged when config.json declares its own or the file is absent. vLLM does the same: its
    get_config (vllm/transformers_utils/config.py: "ModelOpt 0.29.0 and before saves the quantization config in a separate
    hf_quant_config.json") and ModelOptQuantConfigBase.from_config, which reads quant_algo, kv_cache_quant_algo, group_size
    and exclude_modules under `quantization` (vllm-project/vllm@00155cdecca722d98e34234c3d172725b7720b7d:
    vllm/model_executor/layers/quantization/modelopt.py)."""
    if raw.get("quantization_config") is not None or not exists(path):
        return raw, None
    where = clean(str(path))
    data = _expect_mapping(read_json(path, HF_QUANT_FILE), path, HF_QUANT_FILE)
    q = data.get("quantization")
    if not isinstance(q, dict):
        raise InputError(f"{where}: field 'quantization' must be an object holding quant_algo, got {type(q).__name__}")
    from oomplan.formats.declared import MODELOPT_ALGOS, modelopt_priced

    algo = q.get("quant_algo")
    if not modelopt_priced(algo):
        raise InputError(f"{where}: quantization.quant_algo = {shorten(repr(algo), 60)} is not priced "
                         f"(never priced as 16-bit); accepted: {MODELOPT_ALGOS}")
    kv = q.get("kv_cache_quant_algo")
    note = (f"quantisation read from {where} (ModelOpt quant_algo {clean(algo)}), as vLLM does: config.json has no quantization_config"
            + (f"; it also declares kv_cache_quant_algo {shorten(kv, 20)}" if kv else ""))
    return {**raw, "quantization_config": {**q, "quant_method": "modelopt"}}, note


def parse_checkpoint_config(raw: dict, folder: Path, parse: Callable[[dict], ModelSpec]) -> tuple[ModelSpec, dict]:
    """A checkpoint folder's config.json parsed with its hf_quant_config.json merged in (read_hf_quant_config): the spec,
    carrying the note, and the merged config. A refusal of the merged quantisation names the file it came from."""
    path = folder / HF_QUANT_FILE
    raw, note = read_hf_quant_config(raw, path)
    try:
        spec = parse(raw)
    except InputError as exc:
        if note is None or type(exc) is not InputError:
            raise
        raise InputError(f"{exc} (quantization_config as read from {clean(str(path))})") from None
    return (spec if note is None else spec.model_copy(update={"warnings": spec.warnings + (note,)})), raw


def quant_method(raw: dict) -> str | None:
    q = raw.get("quantization_config")
    return str(q.get("quant_method") or "quantized") if isinstance(q, dict) else None


def with_safetensors(spec: ModelSpec, folder: Path, location: str | None = None, quant: str | None = None) -> ModelSpec:
    """The spec with the folder's safetensors headers attached (weights then come from them), if it has any."""
    if not any(folder.glob("*.safetensors")) and not exists(folder / "model.safetensors.index.json"):
        return spec
    from oomplan.checkpoint.safetensors_files import read_folder

    ck = read_folder(folder, quant, location)
    return spec if ck is None else spec.model_copy(update={"checkpoint": ck})


def load_gpu_file(path: Path) -> GpuSpec:
    return build_file(GpuSpec, read_yaml(path, "GPU profile"), path, "GPU profile")


_RAW = re.compile(r"\s*(?:(\d+)\s*[x\u00d7*]\s*)?(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|tib|kb|mb|gb|tb|k|m|g|t)\s*", re.IGNORECASE)
MAX_RAW_GPU_BYTES = 16 * 1024**4  # far above any card (288 GB today)


def parse_raw_capacity(ref: str, flag: str = "--gpu") -> tuple[int, int] | None:
    """'24GiB' -> (1, bytes), '2x80GiB' -> (2, bytes); None when `ref` is not a raw capacity (a unit is required:
    a bare number such as '4090' is a profile alias)."""
    from oomplan.units import parse_bytes

    match = _RAW.fullmatch(ref) if len(ref) < 64 else None
    if not match:
        return None
    num_gpus = int(match.group(1) or 1)
    size = parse_bytes(f"{match.group(2)}{match.group(3)}", flag)
    if not 1 <= num_gpus <= 72:
        raise InputError(f"{flag}: {ref.strip()!r}: the GPU count must be 1..72")
    if not 2**20 <= size <= MAX_RAW_GPU_BYTES:
        raise InputError(f"{flag}: {ref.strip()!r}: a GPU capacity must be between 1 MiB and 16 TiB")
    return num_gpus, size


def raw_gpu(num_gpus: int, memory_bytes: int) -> GpuSpec:
    """The card behind a raw capacity: oomplan/data/raw_gpu.yaml's documented defaults with the given size."""
    from oomplan.units import format_bytes

    path = Path(__file__).resolve().parent / "data" / "raw_gpu.yaml"
    data = dict(_expect_mapping(read_yaml(path, "raw GPU template"), path, "raw GPU template"))
    label = f"{num_gpus}x{format_bytes(memory_bytes).replace(' ', '')}" if num_gpus > 1 else format_bytes(memory_bytes).replace(" ", "")
    data.update(name=f"raw-{label.lower()}", display_name=f"{label} (raw capacity)", memory_bytes=memory_bytes, num_gpus_per_node=num_gpus)
    return build_file(GpuSpec, data, path, "raw GPU template")


def is_raw_gpu(gpu: GpuSpec) -> bool:
    return gpu.architecture == "unknown" and gpu.name.startswith("raw-")


def load_gpu(ref: str, flag: str = "--gpu", base: Path | None = None) -> GpuSpec:
    """A shipped/user GPU profile name or alias, a path to a GPU profile YAML (relative to `base` if given), or a
    raw capacity ('24GiB', '2x80GiB': oomplan/data/raw_gpu.yaml's default overheads)."""
    raw = parse_raw_capacity(ref, flag)
    if raw is not None:
        return raw_gpu(*raw)
    path = _resolve(ref, flag, base, ref.endswith((".yaml", ".yml")) or ref.startswith((".", "/", "~")))
    state = probe(path)
    if state.error and (path.suffix in (".yaml", ".yml") or "/" in ref):
        raise InputError(f"{flag}: {shorten(path, 120)}: {state.error}")
    if path.suffix in (".yaml", ".yml") or state.exists:
        return load_gpu_file(path)
    return load_gpu_file(_find("hardware_profiles", ref, "GPU", flag))
