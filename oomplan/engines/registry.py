"""The engine registry: every sub-package of oomplan/engines/ that defines ENGINE (see protocol.py)."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from pathlib import Path

from oomplan.engines.protocol import Engine
from oomplan.errors import InputError

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def engines() -> dict[str, Engine]:
    """name -> engine, in the order their folders sort (llamacpp, sglang, vllm)."""
    found: dict[str, Engine] = {}
    for info in sorted(pkgutil.iter_modules([str(_HERE)]), key=lambda m: m.name):
        if info.ispkg:
            engine = getattr(importlib.import_module(f"oomplan.engines.{info.name}"), "ENGINE", None)
            if engine is not None:
                found[engine.name] = engine
    return found


def engine_names() -> tuple[str, ...]:
    """Served engines in the order the CLI lists them."""
    order = ("vllm", "sglang", "llamacpp")
    names = engines()
    return tuple(n for n in order if n in names) + tuple(sorted(n for n in names if n not in order))


def _key(text: str) -> str:
    return text.strip().lower().replace(".", "").replace("-", "").replace("_", "")


def find_engine(text: str) -> Engine | None:
    key = _key(text)
    return next((e for e in engines().values() if key in {_key(e.name), *map(_key, e.aliases)}), None)


def get_engine(name: str, flag: str = "--engine") -> Engine:
    engine = find_engine(name)
    if engine is None:
        raise InputError(f"{flag}: {name!r} is not accepted; use one of hf, {', '.join(engine_names())}")
    return engine
