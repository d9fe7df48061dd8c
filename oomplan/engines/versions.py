"""Engine versions as data: one constants file per version range, `<X.Y>.yaml` in the engine's data folder.

A file covers its release up to the next file's (vLLM 0.21.yaml: 0.21.x - 0.23.x when the next is
0.24.yaml); the newest covers the releases its name matches (0.33.yaml: 0.33.x; SGLang 0.5.23.yaml: 0.5.23). `extends:` names the file it builds on; the file
then lists only what changed (and the source of each change), merged over its parent's values and sources.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from oomplan.engines.constants import load_constants
from oomplan.errors import InputError
from oomplan.specs.base import Strict
from oomplan.profiles import read_yaml

VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.post\d+)?")


def version_parts(text: str, flag: str = "--engine-version") -> tuple[int, ...]:
    """'0.33' -> (0, 33); 'v0.20.2' -> (0, 20, 2)."""
    match = VERSION.fullmatch(text.strip())
    if not match:
        raise InputError(f"{flag}: {text!r} is not a version; use X.Y or X.Y.Z (e.g. 0.33)")
    return tuple(int(g) for g in match.groups() if g is not None)


def version_key(text: str, flag: str = "--engine-version") -> tuple[int, int, int]:
    """Comparable (major, minor, patch); a missing patch is 0."""
    parts = version_parts(text, flag)
    return parts[0], parts[1], parts[2] if len(parts) > 2 else 0


@dataclass(frozen=True)
class VersionTable:
    engine: str  # display name, for messages
    folder: Path
    ranges: tuple[str, ...]  # file stems, oldest first: ("0.19", "0.20", ...)

    @property
    def newest(self) -> str:
        return self.ranges[-1]

    def range_of(self, version: str | None, flag: str = "--engine-version") -> str:
        """The file stem whose range holds `version`; None: the newest. Outside every range: an InputError."""
        if version is None:
            return self.newest
        key, newest = version_key(version, flag), version_parts(self.newest)
        if key < version_key(self.ranges[0]) or (key > version_key(self.newest) and key[:len(newest)] != newest):
            raise InputError(f"{flag}: {self.engine} {version} is not modelled; modelled: {self.describe()}")
        return [r for r in self.ranges if version_key(r) <= key][-1]

    def describe(self) -> str:
        """'0.19, 0.20, 0.21-0.23, 0.24-0.25, 0.26-0.32, 0.33'."""
        out = []
        for i, r in enumerate(self.ranges):
            if i + 1 < len(self.ranges):
                (ma, mi, _), (na, ni, _) = version_key(r), version_key(self.ranges[i + 1])
                last = f"{na}.{ni - 1}" if na == ma and ni - 1 > mi else None
                out.append(f"{r}-{last}" if last else r)
            else:
                out.append(r)
        return ", ".join(out)

    def merged(self, path: Path) -> dict[str, Any]:
        """The file's values over its `extends:` chain (sources merged the same way)."""
        data = dict(read_yaml(path, "engine constants file"))
        parent = data.pop("extends", None)
        if parent is None:
            return data
        if str(parent) not in self.ranges or version_key(str(parent)) >= version_key(path.stem):
            raise InputError(f"{path}: extends: {parent!r} must name an earlier file of {', '.join(self.ranges)}")
        base = self.merged(self.folder / f"{parent}.yaml")
        return base | data | {"sources": base.get("sources", {}) | data.get("sources", {})}


C = TypeVar("C", bound=Strict)


def constants_for(table: VersionTable, version: str | None, model: type[C]) -> C:
    """The constants of the range holding `version` (None: the newest modelled), `extends:` merged."""
    return load_constants(table.folder / f"{table.range_of(version)}.yaml", model, table.merged)


def versions_in(folder: Path, engine: str) -> VersionTable:
    stems = sorted((p.stem for p in folder.glob("*.yaml")), key=version_key)
    return VersionTable(engine, folder, tuple(stems))
