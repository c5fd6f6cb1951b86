"""Pre-flight: before any work, check that what a run will write can be written, and claim it.

Every command of the CLI (:data:`ddlib.cli.OUTPUTS`) and every chapter (:func:`ddlib.book.check_parameters`)
calls these before it computes anything, so that a run never trains for an hour and then fails on a folder
it cannot write. Each failure is one :class:`~ddlib.utils.ParamError` line naming the parameter (or the
environment variable) and the path:

- :func:`check_folder` / :func:`check_file`: an output path is usable. A folder must be a folder (or be
  creatable: its nearest existing ancestor is a folder) and this user must be able to create files in it;
  a file must not be a folder, and its folder must be usable. Writability is tested by creating (and
  removing) a temporary entry, not by permission bits, which the root user ignores.
- :func:`check_cache`: the artifact cache, ``$DDLIB_CACHE`` (default ``~/.cache/ddlib``), is such a folder.
- :func:`claim`: an output is not silently replaced and not written by two runs at once. A lock file
  created atomically (``O_CREAT | O_EXCL``) holds the output for one run; a second run stops naming the
  holder (a lock left by a process of this host that no longer exists is taken over). A guarded output
  whose result files record other settings (their ``settings`` key; :func:`settings_of`) is refused unless
  the command was told ``--overwrite``; then, once the run has succeeded, the earlier results it did not
  rewrite are removed, so that the output never mixes two settings.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddlib.utils import ParamError, json_safe

CACHE_ENV = "DDLIB_CACHE"
LOCK_NAME = ".ddlib.lock"
#: what a command's settings never include: where it writes, how it reports, where it computes
HOUSEKEEPING = frozenset({"command", "argv", "settings", "out", "overwrite", "quiet", "device", "no_cache"})
_HOST = socket.gethostname()


# ----------------------------------------------------------------------------- usable paths
def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path) -> str | None:
    """None when this user can create a file in ``folder``, else why not."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ddlib-probe-")
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return None


def _folder_problem(p: Path) -> str | None:
    """Why ``p`` cannot serve as a folder to write into (None: it can)."""
    if os.path.lexists(p) and not p.is_dir():
        return "is a broken link" if p.is_symlink() and not p.exists() else "is a file, not a folder"
    anc = p if p.is_dir() else _nearest_existing(p.parent)
    if not anc.is_dir():
        return f"cannot be created: {str(anc)!r} is a file"
    why = _probe(anc)
    if why:
        return f"cannot be written ({why}: {str(anc)!r})"
    return None


def check_folder(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is (or can become) a folder this user can write, else a ParamError naming ``name``."""
    p = Path(path).expanduser()
    why = _folder_problem(p)
    if why:
        raise ParamError(f"{name}={str(path)!r} {why}; give a folder this user can write (it is created if missing)")
    return p


def check_file(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path if a file can be written there (atomically: its folder must be writable), else a
    ParamError naming ``name``."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ParamError(f"{name}={str(path)!r} is a folder; give a file name, e.g. {str(p / 'result.json')!r}")
    if os.path.lexists(p) and not p.is_file():
        raise ParamError(f"{name}={str(path)!r} exists and is not a regular file; give a file name")
    why = _folder_problem(p.parent)
    if why:
        raise ParamError(f"{name}={str(path)!r} cannot be written: its folder {str(p.parent)!r} {why}; give a file in "
                         "a folder this user can write")
    return p


def cache_root() -> Path:
    """The artifact cache folder: ``$DDLIB_CACHE``, else ``~/.cache/ddlib`` (not checked)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ddlib").expanduser()


def check_cache() -> Path:
    """The artifact cache folder if usable (:func:`check_folder`), else a ParamError naming ``DDLIB_CACHE``."""
    root = cache_root()
    why = _folder_problem(root)
    if why:
        unset = "" if os.environ.get(CACHE_ENV) else " (the default; DDLIB_CACHE is unset)"
        raise ParamError(f"{CACHE_ENV}={str(root)!r}{unset} {why}; set {CACHE_ENV} to a folder this user can write")
    return root


# ----------------------------------------------------------------------------- outputs of a command
@dataclass(frozen=True)
class Output:
    """One output option of a command: what its value must be and what a second run may replace.

    ``option``: the option's ``dest`` (``"out"``); ``kind``: ``"folder"`` or ``"file"``; ``results``: the
    result files of a folder (globs) that must share one run's settings (for a file: the file itself);
    ``varies``: options that name their own result files (``select``'s method, IPC and seed: another value
    writes another file), so they are not part of the settings; ``guard``: False for outputs a command
    merges or rebuilds by design (a sweep's folder, the book), which are only checked and locked; ``lock``:
    False for outputs whose writers lock finer parts themselves (a sweep locks each of its runs).
    """

    option: str
    kind: str
    results: tuple[str, ...] = ()
    varies: tuple[str, ...] = ()
    guard: bool = True
    lock: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("folder", "file"):
            raise ValueError(f"Output.kind={self.kind!r}: 'folder' or 'file'")


def check_output(out: Output, value: Any) -> Path | None:
    """The output path checked by :func:`check_folder` / :func:`check_file` (None: the option was left unset)."""
    if value is None:
        return None
    return (check_folder if out.kind == "folder" else check_file)(out.option, value)


def settings_of(options: Mapping[str, Any], out: Output) -> dict[str, Any]:
    """The settings a run records with its results: its options but the housekeeping (:data:`HOUSEKEEPING`)
    and those that name their own files (``out.varies``), as JSON values."""
    skip = HOUSEKEEPING | set(out.varies) | {out.option}
    return json_safe({k: v for k, v in sorted(options.items()) if k not in skip})


def _result_files(out: Output, path: Path) -> list[Path]:
    if out.kind == "file":
        return [path] if path.is_file() else []
    if not path.is_dir():
        return []
    found = {f for pattern in out.results for f in path.glob(pattern) if f.is_file()}
    return sorted(found)


def _recorded_settings(f: Path) -> dict[str, Any] | None:
    if f.suffix != ".json":
        return None
    try:
        rec = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    s = rec.get("settings") if isinstance(rec, dict) else None
    return s if isinstance(s, dict) else None


def _difference(there: Mapping[str, Any], here: Mapping[str, Any]) -> str:
    for k in sorted(set(there) | set(here)):
        if there.get(k) != here.get(k):
            return f"{k}={there.get(k)!r} there, {here.get(k)!r} here"
    return "the same options"


def conflicts(out: Output, path: Path, settings: Mapping[str, Any]) -> tuple[list[Path], str | None]:
    """The result files under ``path`` that another run's settings made, and a description of the first
    (None when there are none). A result file whose settings cannot be read counts as another run's."""
    files = _result_files(out, path)
    recorded = {f: _recorded_settings(f) for f in files}
    readable = [f for f, s in recorded.items() if s is not None]
    if files and not readable:
        return files, f"{str(files[0])!r} records no settings (written before they were recorded, or unfinished)"
    other = [f for f in readable if recorded[f] != dict(settings)]
    unknown = [f for f in files if f.suffix == ".json" and recorded[f] is None]
    if other:
        f = other[0]
        return other + unknown, f"{str(f)!r} was made with {_difference(recorded[f], settings)}"
    if unknown:
        return unknown, f"{str(unknown[0])!r} records no settings"
    return [], None


# ----------------------------------------------------------------------------- the lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: assume alive
    return True


def _lock_path(out: Output, path: Path) -> Path:
    return path / LOCK_NAME if out.kind == "folder" else path.parent / f".{path.name}.lock"


def _acquire(lock: Path, name: str, path: Path, command: str) -> None:
    info = {"pid": os.getpid(), "host": _HOST, "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                held = {}
            pid = held.get("pid")
            if held.get("host") == _HOST and isinstance(pid, int) and not _alive(pid):
                lock.unlink(missing_ok=True)  # its run is gone: take it over
                continue
            who = (f"pid {pid} on {held.get('host')} since {held.get('since')}: {held.get('command')}" if held
                   else "a run that has just started")
            raise ParamError(f"{name}={str(path)!r} is in use by another run ({who}); wait for it to finish, or "
                             f"delete {str(lock)!r} if no run is using it") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info))
        return
    raise ParamError(f"{name}={str(path)!r}: its lock {str(lock)!r} could not be taken; try again")


@contextlib.contextmanager
def locked(name: str, path: Path, lock_file: Path, command: str = "") -> Iterator[None]:
    """Hold ``lock_file`` (created with ``O_EXCL``) for the block; a ParamError naming ``name`` and ``path`` when
    another live run holds it. The lock is removed on leaving, whatever happens."""
    _acquire(lock_file, name, path, command)
    try:
        yield
    finally:
        lock_file.unlink(missing_ok=True)


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    made = []
    p = folder
    while not p.exists():
        made.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _stamp(f: Path) -> tuple[int, int]:
    st = f.stat()
    return st.st_ino, st.st_mtime_ns


def _other_settings(out: Output, value: Any, why: str) -> ParamError:
    flag = "--" + out.option.replace("_", "-")
    what = "holds results of other settings" if out.kind == "folder" else "holds a result of other settings"
    return ParamError(f"{out.option}={str(value)!r} {what} ({why}); give another {flag}, or pass --overwrite to "
                      "replace them")


@contextlib.contextmanager
def claim(out: Output, value: Any, settings: Mapping[str, Any], *, overwrite: bool = False, lock: bool = True,
          command: str = "") -> Iterator[Path | None]:
    """Hold one output for the run inside the block: checked, locked, and guarded against other settings.

    Raises a ParamError, before the block runs, when the path is unusable, held by another run, or (a
    guarded output without ``overwrite``) holds results of other settings. On leaving the block without an
    exception, with ``overwrite``, the conflicting results the run did not rewrite are removed. The lock is
    released in every case; folders created only to hold it are removed again when left empty.
    ``lock=False`` (ranks other than 0 under torchrun, which do not write) only checks.
    """
    path = check_output(out, value)
    if path is None:
        yield None
        return
    others, why = conflicts(out, path, settings) if out.guard else ([], None)
    if why and not overwrite:
        raise _other_settings(out, value, why)
    if not (lock and out.lock):
        yield path
        return
    lock_file = _lock_path(out, path)
    made = _make_folder(lock_file.parent)
    stamps = {f: _stamp(f) for f in others if f.exists()}
    try:
        with locked(out.option, path, lock_file, command):
            # a run that started between the check above and the lock: look again, now that no one else can write
            again, why = conflicts(out, path, settings) if out.guard else ([], None)
            if why and not overwrite:
                raise _other_settings(out, value, why)
            stamps.update({f: _stamp(f) for f in again if f not in stamps and f.exists()})
            yield path
            for f, stamp in stamps.items():  # replaced: what the new run did not rewrite goes
                with contextlib.suppress(FileNotFoundError):
                    if _stamp(f) == stamp:  # not rewritten (ddlib writes by renaming a new file into place)
                        f.unlink()
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when left empty


@contextlib.contextmanager
def claims(outputs: Iterable[Output], options: Mapping[str, Any], *, overwrite: bool = False, lock: bool = True,
           command: str = "") -> Iterator[dict[str, Any]]:
    """:func:`claim` of every output of a command (its parsed ``options``); yields the settings to record."""
    outputs = list(outputs)
    for o in outputs:  # every path checked before any is locked
        check_output(o, options.get(o.option))
    settings = settings_of(options, outputs[0]) if outputs else {}
    with contextlib.ExitStack() as stack:
        for o in outputs:
            stack.enter_context(claim(o, options.get(o.option), settings_of(options, o), overwrite=overwrite,
                                      lock=lock, command=command))
        yield settings
