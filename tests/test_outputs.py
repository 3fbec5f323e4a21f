import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mrtrans.errors import MrtransError, describe_os_error
from mrtrans.outputs import MARKER, OutputKind, atomic_dir, check_output, marker_kind, output_lock, write_marker


def test_atomic_dir_moves_into_place_only_on_success(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out", OutputKind.report) as tmp:
            (tmp / "a.txt").write_text("1")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "out", OutputKind.report) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (tmp_path / "out" / "a.txt").read_text() == "1"
    assert marker_kind(tmp_path / "out") is OutputKind.report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no temporary folder left
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~_umask()
    with pytest.raises(MrtransError, match="not empty"):
        with atomic_dir(tmp_path / "out", OutputKind.report):
            pass


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_overwrite_replaces_only_a_marked_folder_of_the_same_kind(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(MrtransError, match="not made by mrtrans"):
        with atomic_dir(mine, OutputKind.report, overwrite=True):
            pass
    assert (mine / "thesis.tex").read_text() == "years of work"

    with atomic_dir(tmp_path / "prep", OutputKind.prepared) as tmp:
        (tmp / "prepare.json").write_text("{}")
    with pytest.raises(MrtransError, match=r"holds output of another kind \(prepared slice set"):
        check_output(tmp_path / "prep", OutputKind.report, overwrite=True)
    with atomic_dir(tmp_path / "prep", OutputKind.prepared, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("2")
    assert sorted(p.name for p in (tmp_path / "prep").iterdir()) == [MARKER, "new.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("where, relation", [(".", "is"), ("..", "contains"), ("sub", "lies inside")])
def test_an_output_never_is_contains_or_lies_inside_an_input(tmp_path, where, relation):
    data = tmp_path / "data"
    data.mkdir()
    write_marker(data, OutputKind.prepared)  # even a marked folder: it is this command's input
    with pytest.raises(MrtransError, match=relation):
        check_output(data / where, OutputKind.prepared, overwrite=True, inputs=[data])


def test_a_second_writer_is_refused_and_a_dead_writers_lock_taken_over(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        with pytest.raises(MrtransError, match="another mrtrans command"):
            with atomic_dir(out, OutputKind.prepared):
                pass
    assert not (tmp_path / ".out.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / ".out.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with atomic_dir(out, OutputKind.prepared) as tmp:  # the process that held it is gone
        (tmp / "x").write_text("x")
    assert (out / "x").exists() and not (tmp_path / ".out.lock").exists()


def test_leftovers_of_a_killed_run_are_removed_and_nothing_else(tmp_path):
    killed = tmp_path / ".out.abc123.tmp"  # what SIGKILL during atomic_dir leaves
    killed.mkdir()
    write_marker(killed, OutputKind.prepared)
    (killed / "big.npy").write_bytes(b"0" * 1000)
    foreign = tmp_path / ".out.user.tmp"  # same name pattern, not ours
    foreign.mkdir()
    (foreign / "keep.txt").write_text("k")
    with atomic_dir(tmp_path / "out", OutputKind.prepared) as tmp:
        (tmp / "x").write_text("x")
    assert not killed.exists()
    assert (foreign / "keep.txt").read_text() == "k"


def test_os_errors_read_as_one_line_with_the_file_and_what_to_do():
    text = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/out/x.npy"))
    assert (
        text == "/data/out/x.npy: No space left on device (disk full; free space or choose an output on another disk)"
    )
    assert "no permission" in describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/root/x"))


def test_an_unreadable_lock_is_taken_over_once_it_is_old(tmp_path: Path) -> None:
    import time

    from mrtrans.outputs import output_lock

    target = tmp_path / "x.nii.gz"
    lock = tmp_path / ".x.nii.gz.lock"
    lock.write_text("garbage{")
    with pytest.raises(MrtransError, match="unreadable"):
        with output_lock(target):
            pass
    old = time.time() - 600
    os.utime(lock, (old, old))
    with output_lock(target):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_an_experiment_folder_is_continued_only_by_the_same_experiment(tmp_path):
    from mrtrans.outputs import claim_experiment

    record = {"config": {"seeds": [0], "evaluation": {"steps": 5}}, "root": None}
    out = tmp_path / "bench"
    claim_experiment(out, OutputKind.benchmark, record, not_binding=["evaluation"])
    (out / "runs").mkdir()
    changed_evaluation = {"config": {"seeds": [0], "evaluation": {"steps": 9}}, "root": None}
    claim_experiment(out, OutputKind.benchmark, changed_evaluation, not_binding=["evaluation"])  # accepted
    assert json.loads((out / MARKER).read_text())["record"] == changed_evaluation  # the latest record
    with pytest.raises(MrtransError, match="other data, methods, seeds"):
        claim_experiment(out, OutputKind.benchmark, {"config": {"seeds": [1]}, "root": None})
    with pytest.raises(MrtransError, match="not made by Table 1 reproduction"):
        claim_experiment(out, OutputKind.reproduction, record)
    legacy = tmp_path / "old"  # a benchmark of mrtrans < 0.3: its record in benchmark.json, no marker
    (legacy / "runs").mkdir(parents=True)
    (legacy / "benchmark.json").write_text(json.dumps(record))
    claim_experiment(legacy, OutputKind.benchmark, record, not_binding=["evaluation"])
    assert marker_kind(legacy) is OutputKind.benchmark and (legacy / "benchmark.json").is_file()


def test_an_old_unmarked_demo_is_replaced_only_with_overwrite_and_left_untouched_otherwise(tmp_path):
    from mrtrans.outputs import start_fresh

    old = tmp_path / "demo"  # what the demo of mrtrans < 0.2 wrote, with no marker
    (old / "prepared").mkdir(parents=True)
    (old / "prepared" / "prepare.json").write_text("{}")
    (old / "report").mkdir()
    with pytest.raises(MrtransError, match="--overwrite"):
        start_fresh(old, OutputKind.demo)
    assert sorted(p.name for p in old.iterdir()) == ["prepared", "report"]  # nothing written into it
    start_fresh(old, OutputKind.demo, overwrite=True)
    assert [p.name for p in old.iterdir()] == [MARKER] and marker_kind(old) is OutputKind.demo
    mine = tmp_path / "mine"  # the same names plus a file of the user's: not a demo, never replaced
    (mine / "prepared").mkdir(parents=True)
    (mine / "prepared" / "prepare.json").write_text("{}")
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(MrtransError, match="not made by mrtrans"):
        start_fresh(mine, OutputKind.demo, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
