"""Safe I/O for every file oomplan reads or writes, shared by all layers (no oomplan imports but errors/text).

Reading (`read_input_bytes`, `load_json_text`, `load_yaml_text`):
- one bounded reader: a file is opened with O_NONBLOCK, must be a regular file (fstat S_ISREG: a FIFO,
  /dev/zero or a socket is refused without blocking) and at most `limit` + 1 bytes are ever read;
- JSON and YAML: duplicate keys refused, nesting depth and node count bounded, YAML aliases refused
  (no alias bombs), integers bounded (no 10^300 reaching arithmetic).
Path probing (`probe`, `expand_user`): never raises (long names, ~nosuchuser, permission errors).
Writing (`check_output`/`check_outputs`, `write_atomic_bytes`, `append_line`): outputs are checked before long work
(never an input of the command, never two outputs in one file);
exclusive creation (link(2), so two writers never both "win"); a FIFO, device node or folder is never
replaced (even with --force); a dangling symlink counts as existing; the temporary file is removed on
every error and on SIGTERM/SIGHUP (see `install_signal_cleanup`).
"""
from __future__ import annotations

import errno
import json
import math
import os
import signal
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oomplan.errors import InputError, RuntimeFailure
from oomplan.text import clean

MAX_INPUT_BYTES = 16 * 1024**2  # a config.json is a few KiB; refuse anything absurd
MAX_DEPTH = 64  # nesting of mappings/sequences (real configs: < 6)
MAX_NODES = 1_000_000  # scalars + collections in one document
MAX_INT = 2**63 - 1  # no integer in any file we read is larger (bytes, counts, FLOP/s fit)


# ---------------------------------------------------------------- path probing (never raises)

def expand_user(ref: str, flag: str) -> Path:
    """Path(ref) with ~ expanded; ~nosuchuser is a one-line InputError, not a RuntimeError."""
    try:
        return Path(ref).expanduser()
    except (RuntimeError, KeyError, OSError):
        user = ref.split("/", 1)[0]
        raise InputError(f"{flag}: cannot expand {clean(user)!r}: no such user") from None


@dataclass(frozen=True)
class PathState:
    """What is at a path, from lstat/stat, without raising: exists, kind, and the error if probing failed."""

    exists: bool
    is_file: bool = False
    is_dir: bool = False
    is_link: bool = False  # the path itself is a symlink (dangling or not)
    dangling: bool = False  # a symlink to nothing
    error: str | None = None  # why it could not be probed (name too long, permission denied ...)

    @property
    def is_special(self) -> bool:
        """Exists but is neither a regular file nor a folder: FIFO, device, socket."""
        return self.exists and not self.is_file and not self.is_dir and not self.dangling


def probe(path: Path | str) -> PathState:
    """lstat + stat of a path; OSError (ENAMETOOLONG, EACCES, ELOOP ...) becomes PathState.error."""
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return PathState(False)
    except NotADirectoryError:
        return PathState(False)
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        return PathState(False, error=_reason(exc))
    is_link = stat.S_ISLNK(link.st_mode)
    try:
        st = os.stat(path) if is_link else link
    except OSError:
        return PathState(True, is_link=True, dangling=True)  # exists as a name
    return PathState(True, stat.S_ISREG(st.st_mode), stat.S_ISDIR(st.st_mode), is_link)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower() if exc.errno != errno.ENAMETOOLONG else "file name too long"
    return "invalid path" if isinstance(exc, ValueError) else str(exc)


def is_dir(path: Path | str) -> bool:
    return probe(path).is_dir


def is_file(path: Path | str) -> bool:
    return probe(path).is_file


def exists(path: Path | str) -> bool:
    return probe(path).exists


def list_folder(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Sorted entries of a folder with one of the suffixes; an unreadable folder lists nothing."""
    try:
        names = os.listdir(folder)
    except (OSError, ValueError):
        return []
    return [folder / n for n in sorted(names) if n.endswith(suffixes) and not n.startswith(".")]


# ---------------------------------------------------------------- the one bounded reader

def read_input_bytes(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is a one-line InputError.

    Never blocks (O_NONBLOCK: a FIFO without a writer opens at once and is refused by fstat) and never
    reads more than limit + 1 bytes (a device whose st_size is 0 cannot exhaust memory)."""
    shown = clean(str(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{shown}: is a folder, expected a {what} file") from None
    except PermissionError:
        raise InputError(f"{shown}: not readable (permission denied)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{shown}: cannot read: {_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{shown}: is a folder, expected a {what} file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{shown}: is not a regular file ({_kind(st.st_mode)}); expected a {what} file")
        if st.st_size > limit:
            raise InputError(f"{shown}: {st.st_size} bytes is too large for a {what} (limit {limit})")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise InputError(f"{shown}: more than {limit} bytes is too large for a {what} (limit {limit})")
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def read_input_text(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """read_input_bytes, decoded as UTF-8, not empty."""
    data = read_input_bytes(path, what, limit)
    if not data.strip():
        raise InputError(f"{clean(str(path))}: file is empty, expected a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{clean(str(path))}: not UTF-8 text (byte {exc.start}); expected a {what}") from None


# ---------------------------------------------------------------- structured text: JSON and YAML

def _check_tree(data: Any, where: str) -> None:
    """Depth, size and integer bounds of parsed data (iterative: no recursion on hostile nesting)."""
    stack, seen = [(data, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise InputError(f"{where}: more than {MAX_NODES} values; not a config file")
        if isinstance(node, dict):
            children = list(node.values()) + list(node.keys())
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INT:
                raise InputError(f"{where}: an integer with {len(str(abs(node)))} digits is out of range (at most {MAX_INT})")
            continue
        if depth > MAX_DEPTH:
            raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep; not a config file")
        stack.extend((child, depth + 1) for child in children)


def _no_duplicates(where: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise InputError(f"{where}: duplicate key {clean(key)!r}")
            out[key] = value
        return out
    return hook


def load_json_text(text: str, where: str) -> Any:
    """json.loads with duplicate keys refused and bounded depth/size/integers; errors are one line."""
    where = clean(where)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(where))
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep; not a config file") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InputError(f"{where}: invalid JSON: {clean(str(exc).split(';')[0])}") from None
    _check_tree(data, where)
    return data


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader (libyaml when available) whose mappings refuse duplicate keys."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen  # 1, 1.0 and true are one key of the dict PyYAML builds
                except TypeError:  # an unhashable key: PyYAML refuses it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {clean(str(key))[:60]!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _scan_events(text: str, where: str) -> None:
    """Before anything is built: no aliases, bounded depth and size (libyaml's event stream is iterative)."""
    depth = events = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        events += 1
        if events > MAX_NODES:
            raise InputError(f"{where}: more than {MAX_NODES} YAML nodes; not a config file")
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            line = f", at line {mark.line + 1}" if mark is not None else ""
            raise InputError(f"{where}: YAML aliases (*{clean(str(event.anchor))[:40]}) are not accepted{line}; write the value out")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep; not a config file")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load_yaml_text(text: str, where: str) -> Any:
    """One YAML document, safely: no aliases, no duplicate keys, bounded depth, size and integers."""
    where = clean(where)
    try:
        _scan_events(text, where)
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = clean(getattr(exc, "problem", None) or "malformed YAML")
        raise InputError(f"{where}: invalid YAML{at}: {problem}") from None
    except (RecursionError, MemoryError):
        raise InputError(f"{where}: nested too deeply; not a config file") from None
    except ValueError as exc:  # e.g. an integer PyYAML cannot convert
        raise InputError(f"{where}: invalid YAML: {clean(str(exc))[:120]}") from None
    _check_tree(data, where)
    return data


def read_json(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> Any:
    return load_json_text(read_input_text(path, what, limit), str(path))


def read_yaml(path: Path | str, what: str, limit: int = MAX_INPUT_BYTES) -> Any:
    return load_yaml_text(read_input_text(path, what, limit), str(path))


# ---------------------------------------------------------------- writing

_PENDING: set[str] = set()  # temporary files not yet renamed into place; removed on SIGTERM/SIGHUP


def _same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two names are one file (samefile when both exist, else the resolved paths); never raises."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def check_output(path: Path, force: bool, flag: str = "-o", inputs: tuple[Path | str | None, ...] = ()) -> None:
    """Refuse an output before any long work: an existing name without --force (a dangling symlink
    counts), a folder, FIFO or device (even with --force), a missing or non-writable folder, and a file
    the command reads (`inputs`: its plan, config or model file), which --force does not make an output."""
    shown = clean(str(path))
    for given in inputs:
        if given is not None and os.path.exists(given) and _same_file(path, given):
            raise InputError(f"{flag}: {shown} is also this command's input; write the output to another file")
    state = probe(path)
    if state.error:
        raise InputError(f"{flag}: {shown}: {state.error}")
    if state.is_dir:
        raise InputError(f"{flag}: {shown} is a folder")
    if state.is_special:
        raise InputError(f"{flag}: {shown} is not a regular file (a FIFO, device or socket); refusing to replace it")
    if state.exists and not force:
        raise InputError(f"{flag}: {shown} exists; pass --force to overwrite it")
    folder = _folder(path)
    fstate = probe(folder)
    if fstate.error:
        raise InputError(f"{flag}: folder {clean(str(folder))}: {fstate.error}")
    if not fstate.is_dir:
        raise InputError(f"{flag}: folder {clean(str(folder))} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: folder {clean(str(folder))} is not writable (permission denied)")


def check_outputs(outputs: tuple[tuple[Path | None, str], ...], force: bool, inputs: tuple[Path | str | None, ...] = ()) -> None:
    """check_output for each (path, flag) given, and no two flags naming one file (the second would replace the first)."""
    given = [(path, flag) for path, flag in outputs if path is not None]
    for i, (path, flag) in enumerate(given):
        for other, other_flag in given[:i]:
            if _same_file(path, other):
                raise InputError(f"{flag}: {clean(str(path))} is also {other_flag}'s file; give each output its own file")
        check_output(path, force, flag, inputs)


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_bytes(path: Path, data: bytes, force: bool, flag: str = "-o") -> None:
    """Write `data` to `path` all or nothing. Without force the name is created exclusively (link(2)
    fails if anything, even a dangling symlink, appeared there meanwhile); with force only a regular
    file or a symlink is replaced. I/O failures (full disk, EFBIG) are RuntimeFailure (exit 3)."""
    check_output(path, force, flag)
    folder = _folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RuntimeFailure(f"{flag}: cannot write in {clean(str(folder))}: {_reason(exc)}") from None
    _PENDING.add(tmp)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a user's file gets the usual mode
            _publish(tmp, path, force, flag)
        except OSError as exc:
            raise RuntimeFailure(f"{flag}: cannot write {clean(str(path))}: {_reason(exc)}") from None
    finally:
        _discard(tmp)


def _publish(tmp: str, path: Path, force: bool, flag: str) -> None:
    if not force:
        try:
            os.link(tmp, path)  # atomic, exclusive: EEXIST if anything is at the name now
            return
        except FileExistsError:
            raise InputError(f"{flag}: {clean(str(path))} exists; pass --force to overwrite it") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV, errno.ENOSYS):
                raise
        try:  # a file system without hard links: reserve the name exclusively, then rename over it
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise InputError(f"{flag}: {clean(str(path))} exists; pass --force to overwrite it") from None
    else:
        state = probe(path)
        if state.is_dir or (state.is_special and not state.is_link):
            raise InputError(f"{flag}: {clean(str(path))} is not a regular file; refusing to replace it")
    os.replace(tmp, path)


def _discard(tmp: str) -> None:
    _PENDING.discard(tmp)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def remove_pending() -> None:
    """Remove temporary files of writes in progress (called on a terminating signal)."""
    for tmp in list(_PENDING):
        _discard(tmp)


class Terminated(BaseException):
    """Raised by the SIGTERM/SIGHUP handler, so that `finally` blocks (and temp-file removal) run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def install_signal_cleanup() -> None:
    """SIGTERM/SIGHUP raise Terminated in the main thread: pending writes are removed, exit 128 + n."""

    def handler(signum, frame):  # noqa: ANN001, ARG001
        remove_pending()
        raise Terminated(signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):  # not the main thread
                pass


def check_log(path: Path, flag: str) -> None:
    """A log path that can never be appended to (a folder, FIFO, device, an unusable name): exit 3 now."""
    shown = clean(str(path))
    state = probe(path)
    if state.error:
        raise RuntimeFailure(f"{flag}: {shown}: {state.error}")
    if state.is_dir or state.is_special:
        raise RuntimeFailure(f"{flag}: {shown} is not a regular file; not writing the log")
    for parent in path.parents:  # the first existing ancestor must be a folder (HOME may be a file)
        pstate = probe(parent)
        if pstate.exists:
            if not pstate.is_dir:
                raise RuntimeFailure(f"{flag}: {shown}: {clean(str(parent))} is not a folder")
            break


def append_line(path: Path, line: str, flag: str) -> None:
    """Append one line to a log file (created with its folder); refuses non-regular files; exit 3 on I/O errors."""
    shown = clean(str(path))
    check_log(path, flag)
    try:
        _folder(path).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0), 0o666)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RuntimeFailure(f"{flag}: {shown} is not a regular file; not writing the log")
            payload = (line.rstrip("\n") + "\n").encode("utf-8")
            if os.write(fd, payload) != len(payload):
                raise OSError(errno.ENOSPC, "short write")
        finally:
            os.close(fd)
    except OSError as exc:
        raise RuntimeFailure(f"{flag}: cannot write {shown}: {_reason(exc)}") from None


def finite_json(obj: Any) -> str:
    """json.dumps that refuses NaN/Infinity (not JSON) with a one-line RuntimeFailure."""
    try:
        return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:
        raise RuntimeFailure("internal: a result holds a non-finite number (NaN or Infinity); refusing to print invalid JSON") from None


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and (isinstance(x, int) or math.isfinite(x))
