"""Issue 24, fail before the work and never lose a result: the pre-flight of every command and chapter
(ddlib.preflight), outputs never silently replaced, artifacts that carry the identity of what made them
(ddlib.identity), corrupt inputs named in one line.

Every command of the CLI registry (ddlib.cli.OUTPUTS) and every output option it declares is exercised with a
handler that fails the test if it runs: the pre-flight must stop first, in one line naming the option. The
chapters' parameter check is in tests/test_notebook_params.py, sweeps in tests/test_sweep.py, the
property-based cases in tests/test_properties.py.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddlib import artifacts, cli, identity, preflight
from ddlib.cli import NO_CACHE, OUTPUTS
from ddlib.sfm.sets import save_synthetic
from ddlib.utils import ParamError

#: the fewest arguments that take each command past argparse to its pre-flight (a new command adds a line here,
#: which test_every_command_declares_its_outputs asks for)
MINIMAL = {
    "datasets": [],
    "distill": ["--backbone", "convnet-random", "--dataset", "digits"],
    "evaluate-synthetic": ["--images", "random-real", "--ipc", "1", "--backbone", "convnet-random",
                           "--dataset", "digits"],
    "select": ["--dataset", "digits", "--method", "random", "--ipc", "1"],
    "evaluate": ["--selection", "selection.json"],
    "sweep": ["notebook.ipynb", "-p", "a", "1"],
    "book": ["--scale", "test"],
    "cache": ["export", "--source", "cache-folder"],
}
OUTPUT_CASES = [(c, o) for c, outs in OUTPUTS.items() for o in outs]
CACHE_COMMANDS = sorted(c for c in OUTPUTS if c not in NO_CACHE)
GUARDED = sorted(c for c, outs in OUTPUTS.items() if any(o.guard for o in outs))


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = cli.build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every handler replaced by one that records that it ran (the pre-flight must stop before it)."""
    ran: list[str] = []
    real = cli.build_parser

    def build():  # noqa: ANN202
        parser, handlers = real()
        return parser, {name: (lambda args, name=name: ran.append(name) or 0) for name in handlers}

    monkeypatch.setattr(cli, "build_parser", build)
    return ran


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A folder this user cannot create files in: mode 555 for a normal user; for root, who ignores modes,
    /sys/kernel (sysfs refuses new files to everyone)."""
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    d = Path("/sys/kernel")
    if not d.is_dir() or preflight._probe(d) is None:
        pytest.skip("no folder here refuses the root user")
    yield d


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_every_command_declares_its_outputs() -> None:
    """A new command (or a new path option) must say in OUTPUTS what it writes, so the cases below cover it."""
    subs = _subparsers()
    assert set(OUTPUTS) == set(subs) == set(MINIMAL)
    for name, p in subs.items():
        paths = {a.dest for a in p._actions if any(s.startswith("--out") for s in a.option_strings)}
        assert paths == {o.option for o in OUTPUTS[name]}, name
        if any(o.guard for o in OUTPUTS[name]):
            assert "overwrite" in {a.dest for a in p._actions}, f"{name} guards its output but has no --overwrite"


def _bad_paths(kind: str, tmp_path: Path, unwritable: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    if kind == "folder":
        return [(a_file, "is a file, not a folder"), (a_file / "sub", "cannot be created"),
                (unwritable / "new", "cannot be written")]
    return [(a_folder, "is a folder"), (a_file / "r.json", "cannot be written"),
            (unwritable / "r.json", "cannot be written")]


@pytest.mark.parametrize("command, out", OUTPUT_CASES, ids=[f"{c}--{o.option}" for c, o in OUTPUT_CASES])
def test_an_unusable_output_stops_before_any_work(command: str, out: preflight.Output, tmp_path: Path,
                                                  unwritable: Path, no_work: list[str], capsys) -> None:
    """Issue 24: --out that cannot be written used to fail with a PermissionError traceback after every model
    was trained; --out naming an existing file (sweep) with a FileExistsError traceback."""
    flag = "--" + out.option.replace("_", "-")
    for path, why in _bad_paths(out.kind, tmp_path, unwritable):
        args = [a if a != "selection.json" else str(tmp_path / a) for a in MINIMAL[command]]
        assert cli.main([command, *args, flag, str(path)]) == 2
        line = _one_error_line(capsys)
        assert line.startswith(f"error: {flag}={str(path)!r}") and why in line, line
    assert no_work == []


@pytest.mark.parametrize("command", CACHE_COMMANDS)
def test_an_unusable_cache_stops_before_any_work(command: str, tmp_path: Path, unwritable: Path,
                                                 monkeypatch: pytest.MonkeyPatch, no_work: list[str], capsys) -> None:
    """Issue 24: a $DDLIB_CACHE that is a file or cannot be written failed with a traceback, once after the
    encoder had trained."""
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    out = tmp_path / ("out" if OUTPUTS[command][0].kind == "folder" else "out.json")
    for cache, why in ((a_file, "is a file, not a folder"), (a_file / "sub", "cannot be created"),
                       (unwritable / "cache", "cannot be written")):
        monkeypatch.setenv("DDLIB_CACHE", str(cache))
        args = [a if a != "selection.json" else str(tmp_path / a) for a in MINIMAL[command]]
        assert cli.main([command, *args, "--out", str(out)]) == 2
        line = _one_error_line(capsys)
        assert line.startswith(f"error: DDLIB_CACHE={str(cache)!r} {why}"), line
        assert not out.exists()
    assert no_work == []


def test_the_cache_is_checked_before_the_first_artifact_is_computed(tmp_path: Path, monkeypatch) -> None:
    """The library's own check (artifacts.cache_dir): the compute never starts on an unusable cache."""
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    monkeypatch.setenv("DDLIB_CACHE", str(a_file))
    with pytest.raises(ParamError, match=r"^DDLIB_CACHE=.* is a file, not a folder; set DDLIB_CACHE"):
        artifacts.cached("stage-x", lambda: pytest.fail("computed on an unusable cache"))
    monkeypatch.delenv("DDLIB_CACHE")
    monkeypatch.setenv("HOME", str(a_file))
    with pytest.raises(ParamError, match=r"\(the default; DDLIB_CACHE is unset\) cannot be created"):
        preflight.check_cache()


# ----------------------------------------------------------------------------- outputs never silently replaced
def _changing_option(command: str) -> list[str]:
    """An option of ``command`` that changes its settings: its first integer option that is neither
    housekeeping nor one that names its own files."""
    out = OUTPUTS[command][0]
    for a in _subparsers()[command]._actions:
        if a.option_strings and a.type is int and a.dest not in preflight.HOUSEKEEPING | set(out.varies):
            return [a.option_strings[-1], "7"]
    raise AssertionError(f"{command} has no integer option")


def _writer(runs: list[str]):  # noqa: ANN202
    """A handler that writes what its command's output declares, each JSON with the claimed settings; the
    run's number in the names, so that a later run writes other files."""
    def handler(args: argparse.Namespace) -> int:
        out, tag = OUTPUTS[args.command][0], str(len(runs))
        runs.append(args.command)
        path = Path(args.out)
        files = [path] if out.kind == "file" else [path / g.replace("*", tag) for g in out.results]
        for f in files:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps({"settings": args.settings}) if f.suffix == ".json" else "payload")
        return 0
    return handler


@pytest.mark.parametrize("command", GUARDED)
def test_a_second_run_of_other_settings_is_refused_unless_told(command: str, tmp_path: Path, monkeypatch, capsys):
    """Issue 24: select twice into one --out with other settings silently replaced the first run's files and
    could leave a folder of mixed settings."""
    runs: list[str] = []
    real = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: (real()[0], {c: _writer(runs) for c in OUTPUTS}))
    kind = OUTPUTS[command][0].kind
    out = tmp_path / ("out" if kind == "folder" else "out.json")
    base = [command, *[a if a != "selection.json" else str(tmp_path / a) for a in MINIMAL[command]], "--out", str(out)]
    assert cli.main(base) == 0 and cli.main(base) == 0  # the same settings again: a re-run, allowed
    first = sorted(p.name for p in out.iterdir()) if kind == "folder" else None
    change = _changing_option(command)
    assert cli.main([*base, *change]) == 2
    line = _one_error_line(capsys)
    assert f"error: --out={str(out)!r} holds" in line and "of other settings" in line and change[0] in line, line
    assert "--overwrite" in line and len(runs) == 2
    assert cli.main([*base, *change, "--overwrite"]) == 0
    dest = _subparsers()[command]._option_string_actions[change[0]].dest
    if kind == "folder":  # the first settings' files are gone (or rewritten): the folder holds one run's settings
        now = sorted(p.name for p in out.iterdir())
        assert now == sorted(g.replace("*", "2") for g in OUTPUTS[command][0].results), (first, now)
        assert all(json.loads(f.read_text())["settings"][dest] == 7 for f in out.glob("*.json"))
    else:
        assert json.loads(out.read_text())["settings"][dest] == 7
    assert not list(tmp_path.rglob("*.lock"))


def test_select_may_add_methods_ipcs_and_seeds_to_its_folder(tmp_path: Path, monkeypatch) -> None:
    """The options that name their own files (Output.varies) are not settings: another method, IPC or seed
    writes beside the earlier files."""
    runs: list[str] = []
    real = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: (real()[0], {c: _writer(runs) for c in OUTPUTS}))
    out = tmp_path / "sel"
    base = ["select", "--dataset", "digits", "--out", str(out)]
    for extra in (["--method", "random", "--ipc", "1"], ["--method", "bps", "--ipc", "1,10", "--seed", "3"]):
        assert cli.main([*base, *extra]) == 0
    assert len(list(out.glob("*.json"))) == 2


def test_results_of_unknown_settings_are_refused(tmp_path: Path, no_work: list[str], capsys) -> None:
    """Files written before settings were recorded (or by a run that stopped half-way) count as other settings."""
    out = tmp_path / "sel"
    out.mkdir()
    (out / "bps_ipc1_seed0.json").write_text("{}")
    assert cli.main(["select", *MINIMAL["select"], "--out", str(out)]) == 2
    assert "records no settings" in _one_error_line(capsys) and no_work == []
    syn = tmp_path / "syn"
    syn.mkdir()
    (syn / "images.pt").write_bytes(b"x")  # a distillation whose record was never written
    assert cli.main(["distill", *MINIMAL["distill"], "--out", str(syn)]) == 2
    assert "records no settings" in _one_error_line(capsys) and no_work == []


@pytest.mark.parametrize("command, out", [c for c in OUTPUT_CASES if c[1].lock], ids=lambda v: getattr(v, "option", v))
def test_a_run_in_progress_holds_its_output(command: str, out: preflight.Output, tmp_path: Path,
                                            no_work: list[str], capsys) -> None:
    """Two runs at once into one --out: the second stops, naming the first; a lock of a process that is gone
    is taken over; the lock goes with the run, and a folder made only for it too."""
    path = tmp_path / ("out" if out.kind == "folder" else "out.json")
    lock = preflight._lock_path(out, path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now",
                                "command": "python -m ddlib select …"}))
    args = [command, *[a if a != "selection.json" else str(tmp_path / a) for a in MINIMAL[command]],
            "--" + out.option, str(path)]
    assert cli.main(args) == 2
    line = _one_error_line(capsys)
    assert "is in use by another run (pid" in line and "python -m ddlib select" in line and no_work == []
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    assert cli.main(args) == 0 and no_work == [command] and not lock.exists()
    lock.parent.rmdir() if out.kind == "folder" and not any(lock.parent.iterdir()) else None


def test_a_failed_run_leaves_no_lock_and_no_empty_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "new" / "sel"
    assert cli.main(["select", "--dataset", "digits", "--method", "magic", "--out", str(out)]) == 2
    assert "method" in _one_error_line(capsys) and not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- artifacts carry their identity
def _digits_set(folder: Path, **identity_changes) -> Path:
    from ddlib import data

    ds = data.load("digits", per_class=2, test_per_class=2)
    x = torch.rand(10, 1, 8, 8)
    save_synthetic({"images": x, "labels": torch.arange(10), "config": {"method": "sfm", "ipc": 1}}, folder,
                   classes=list(ds.classes), backbone="convnet-random", dataset=ds.spec)
    if identity_changes:
        obj = torch.load(folder / "images.pt", weights_only=False)
        obj["identity"].update(identity_changes)
        torch.save(obj, folder / "images.pt")
    return folder


SYN_EVAL = ["--backbone", "convnet-random", "--epochs", "1", "--runs", "1", "--per-class", "2",
            "--test-per-class", "2", "--quiet"]


@pytest.mark.parametrize("change, extra, words", [
    ({}, ["--dataset", "fashion-mnist"], "dataset 'digits' there, 'fashion-mnist' here"),
    ({"classes": list("abcdefghij")}, [], "classes 10 classes ['a', 'b', 'c', 'd', …] there"),
    ({"channels": 3}, [], "channels 3 there, 1 here"),
    ({}, ["--mode", "ci", "--distill-backbone", "inhouse"], "backbone 'convnet-random' there, 'inhouse' here"),
])
def test_a_synthetic_set_is_not_scored_on_another_run(change: dict, extra: list[str], words: str, tmp_path: Path,
                                                      monkeypatch, capsys) -> None:
    """Issue 24: images distilled on digits were scored against Fashion-MNIST (exit 0, 5 %)."""
    from ddlib.sfm import backbones

    monkeypatch.setattr(backbones, "get_backbone", lambda *a, **k: pytest.fail("work started"))
    d = _digits_set(tmp_path / "syn", **change)
    assert cli.main(["evaluate-synthetic", "--images", str(d), *SYN_EVAL, *extra, "--out", str(tmp_path / "r.json")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: --images={str(d)!r} was made for another run (") and words in line, line
    assert not (tmp_path / "r.json").exists()


def _selection(tmp_path: Path, **changes) -> Path:
    from ddlib import data

    ds = data.load("digits", per_class=5, seed=0)
    sel = {"indices": list(range(10)), "method": "random", "ipc": 1, "dataset": ds.spec,
           "identity": {**identity.of_dataset(ds), **changes}}
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(sel))
    return path


@pytest.mark.parametrize("change, words", [
    ({"classes": ["x"] * 10}, "classes 10 classes ['x', 'x', 'x', 'x', …] there"),
    ({"channels": 3}, "channels 3 there, 1 here"),
    ({"n_train": 60}, "training images 60 there, 50 here"),
    ({"image_size": 16}, "image size 16 there, 8 here"),
])
def test_a_selection_is_not_evaluated_on_other_data(change: dict, words: str, tmp_path: Path, monkeypatch, capsys):
    from ddlib.bps import distill

    monkeypatch.setattr(distill, "evaluate_selection", lambda *a, **k: pytest.fail("work started"))
    path = _selection(tmp_path, **change)
    assert cli.main(["evaluate", "--selection", str(path), "--out", str(tmp_path / "r.json"), "--loss", "ce"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: --selection={str(path)!r} was made for another run (") and words in line, line


def test_identity_mismatch_names_the_first_difference() -> None:
    a = {"dataset": "digits", "classes": ["0", "1"], "channels": 1, "backbone": None}
    assert identity.mismatch(a, {**a, "backbone": "x"}) is None  # not recorded there: not compared
    assert identity.mismatch(a, {**a, "channels": 3}) == "channels 1 there, 3 here"
    assert identity.mismatch(a, {**a, "classes": ("0", "1")}) is None  # a tuple read back as a list
    assert identity.dataset_name({"name": "cifar10:/a/b.tar"}) == "cifar10"
    assert identity.dataset_name("imagefolder:/a") == "imagefolder:/a"  # another folder is another dataset
    with pytest.raises(ParamError, match=r"^images='d' was made for another run \(dataset 'a' there, 'b' here\); x$"):
        identity.check("images='d'", {"dataset": "a"}, {"dataset": "b"}, "x")


# ----------------------------------------------------------------------------- unreadable or corrupt inputs
def _torch_bytes(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


CORRUPT_SETS = {
    "random bytes": b"\x80\x04not a pickle at all",
    "truncated": _torch_bytes({"images": torch.zeros(2, 1, 4, 4), "labels": torch.zeros(2, dtype=torch.long)})[:300],
    "json": b'{"images": []}',
    "empty": b"",
    "a list": _torch_bytes([1, 2, 3]),
    "no labels": _torch_bytes({"images": torch.zeros(2, 1, 4, 4)}),
    "flat images": _torch_bytes({"images": torch.zeros(2, 16), "labels": torch.zeros(2, dtype=torch.long)}),
    "float labels": _torch_bytes({"images": torch.zeros(2, 1, 4, 4), "labels": torch.zeros(2)}),
    "lengths differ": _torch_bytes({"images": torch.zeros(3, 1, 4, 4), "labels": torch.zeros(2, dtype=torch.long)}),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_SETS))
def test_a_corrupt_images_file_is_named_in_one_line(name: str, tmp_path: Path, capsys) -> None:
    """Issue 24: a corrupt images.pt gave a raw UnpicklingError traceback."""
    d = tmp_path / "syn"
    d.mkdir()
    (d / "images.pt").write_bytes(CORRUPT_SETS[name])
    assert cli.main(["evaluate-synthetic", "--images", str(d), *SYN_EVAL, "--dataset", "digits",
                     "--out", str(tmp_path / "r.json")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: --images={str(d)!r}: {str(d / 'images.pt')!r} ") and "python -m ddlib distill" in line


CORRUPT_SELECTIONS = {
    "not json": b"{indices: [1, 2]",
    "binary": b"\xff\xfe\x00\x01",
    "a list": b"[1, 2, 3]",
    "no indices": b'{"method": "bps"}',
    "indices text": b'{"indices": "1,2"}',
    "dataset text": b'{"indices": [1], "dataset": "digits"}',
    "config list": b'{"indices": [1], "config": []}',
    "teacher text": b'{"indices": [1], "config": {"teacher": "resnet"}}',
    "ipc bool": b'{"indices": [1], "ipc": true}',
    "unknown teacher field": b'{"indices": [1], "dataset": {"name": "digits", "per_class": 5, "seed": 0}, '
                             b'"config": {"teacher": {"no_such_field": 1}}}',
}


@pytest.mark.parametrize("name", sorted(CORRUPT_SELECTIONS))
def test_a_corrupt_selection_is_named_in_one_line(name: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "sel.json"
    path.write_bytes(CORRUPT_SELECTIONS[name])
    assert cli.main(["evaluate", "--selection", str(path), "--out", str(tmp_path / "r.json")]) == 2
    assert _one_error_line(capsys).startswith(f"error: --selection={str(path)!r}")


def test_os_errors_reach_the_user_as_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    """The CLI's safety net: an OSError or a pickle error from anywhere is printed as one line, exit 2."""
    import pickle

    for error in (PermissionError(13, "Permission denied", str(tmp_path / "x")), pickle.UnpicklingError("bad key")):
        real = cli.build_parser
        monkeypatch.setattr(cli, "build_parser", lambda e=error: (real()[0], {c: (lambda a, e=e: (_ for _ in ()).throw(e))
                                                                           for c in OUTPUTS}))
        assert cli.main(["datasets"]) == 2
        assert _one_error_line(capsys) in (f"error: [Errno 13] Permission denied: {str(tmp_path / 'x')!r}",
                                           "error: UnpicklingError: bad key")
        monkeypatch.setattr(cli, "build_parser", real)
