"""A prepared dataset remembers its source by content: every load of it warns when the source
changed, even by a same-size edit with the mtime put back; temporaries of a killed write go
(issue 16, findings 6 and 7's cache part)."""

from __future__ import annotations

import os

import pytest

from seqrec_fast.cli import main
from seqrec_fast.data import load_dataset, prepare_dataset, synthesize
from seqrec_fast.data.dataset import CACHE_FILE
from seqrec_fast.data.source import file_digest
from seqrec_fast.train.data_source import open_dataset

ORIGINAL = "user,item,time\n1,2,3\n1,3,4\n1,4,5\n"
EDITED = "user,item,time\n1,2,3\n1,4,4\n1,3,5\n"  # the same size


def edit_keeping_size_and_mtime(path) -> None:
    stat = path.stat()
    path.write_text(EDITED)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.fixture
def prepared(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text(ORIGINAL)
    prepare_dataset(source, out_dir=tmp_path / "ds")
    return source, tmp_path / "ds"


def test_unchanged_source_loads_quietly(prepared, caplog):
    _source, out = prepared
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        load_dataset(out)
    assert caplog.text == ""


def test_same_size_edit_with_restored_mtime_is_reported_by_every_load(prepared, caplog, capsys):
    source, out = prepared
    edit_keeping_size_and_mtime(source)
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        load_dataset(out)  # the Python API
        open_dataset(str(out))  # train --data DIR, evaluate, search
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert all(str(source) in w and "changed since" in w and "data prepare" in w for w in warnings)
    caplog.clear()
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        assert main(["data", "stats", str(out), "--json"]) == 0
    assert "changed since" in caplog.text


def test_prepare_rebuilds_after_a_same_size_edit(prepared):
    source, out = prepared
    edit_keeping_size_and_mtime(source)
    rebuilt = prepare_dataset(source, out_dir=out)
    assert not rebuilt.is_memory_mapped
    assert [rebuilt.item_ids()[i - 1].as_py() for i in rebuilt.sequence(0)] == [2, 4, 3]


def test_a_vanished_source_is_reported(prepared, caplog):
    source, out = prepared
    source.unlink()
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        load_dataset(out)
    assert "no longer exists" in caplog.text


def test_the_digest_is_of_the_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 100_000)
    b.write_bytes(b"x" * 99_999 + b"y")
    assert file_digest(a) == file_digest(a) != file_digest(b)
    assert len(file_digest(a)) == 32


def test_temporaries_of_a_killed_write_are_removed_by_the_next(tmp_path):
    dead = tmp_path / f"{CACHE_FILE}.tmp-999999999"  # beyond any pid the kernel hands out
    dead.write_bytes(b"half a cache")
    alive = tmp_path / f"{CACHE_FILE}.tmp-{os.getppid()}"  # a live writer's: left alone
    alive.write_bytes(b"being written")
    synthesize("tiny", seed=0).save(tmp_path)
    assert not dead.exists() and alive.exists()
    assert load_dataset(tmp_path).n_users > 0


def test_an_unreadable_source_is_a_warning_not_a_failure(prepared, caplog, monkeypatch):
    from seqrec_fast.data import source as source_module

    def unreadable(path):
        raise source_module.DataFormatError(f"{path}: cannot read: Permission denied")

    monkeypatch.setattr(source_module, "file_digest", unreadable)
    _source, out = prepared
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        assert load_dataset(out).n_users == 1
    assert "cannot be read to check it" in caplog.text
