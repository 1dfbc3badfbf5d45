"""The dataset cache: round trip, memory mapping, reuse, corruption, staleness, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from seqrec_fast.cli import main
from seqrec_fast.data import CacheError, load_dataset, prepare_dataset, synthesize
from seqrec_fast.data.dataset import CACHE_FILE


def test_round_trip_is_memory_mapped_and_identical(tmp_path):
    ds = synthesize("tiny", seed=2).with_split("temporal")
    ds.save(tmp_path)
    back = load_dataset(tmp_path)
    assert back.is_memory_mapped and not ds.is_memory_mapped
    for name in ("offsets", "items", "times", "train_end", "valid_pos", "test_pos"):
        np.testing.assert_array_equal(getattr(ds, name), getattr(back, name))
        assert not getattr(back, name).flags.writeable
    assert back.stats() == ds.stats() and back.meta == ds.meta
    first = [b["negatives"] for b in ds.train_loader(n_negatives=2).epoch(0)]
    again = [b["negatives"] for b in back.train_loader(n_negatives=2).epoch(0)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_string_id_maps_survive_the_cache(tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,time\nalice,x,1\nbob,y,2\nalice,z,3\n")
    prepare_dataset(csv, out_dir=tmp_path / "out")
    back = load_dataset(tmp_path / "out")
    assert back.user_ids().to_pylist() == ["alice", "bob"]
    assert back.item_ids().to_pylist() == ["x", "y", "z"]


def test_up_to_date_cache_is_reused_and_stale_one_rebuilt(tmp_path, caplog):
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,time\n1,1,1\n1,2,2\n1,3,3\n")
    out = tmp_path / "out"
    prepare_dataset(csv, out_dir=out)
    assert prepare_dataset(csv, out_dir=out).is_memory_mapped
    with caplog.at_level("INFO", logger="seqrec_fast.data"):
        rebuilt = prepare_dataset(csv, out_dir=out, min_seq_len=2)  # other options
    assert "stale" in caplog.text and not rebuilt.is_memory_mapped
    csv.write_text("user,item,time\n1,1,1\n1,2,2\n1,3,3\n2,3,1\n")  # the source changed
    os.utime(csv, ns=(1, 1))
    assert prepare_dataset(csv, out_dir=out).n_users == 2


def corrupt(path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x55
    path.write_bytes(bytes(data))


def test_corrupted_cache_is_reported_and_prepare_rebuilds_it(tmp_path, caplog):
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,time\n1,1,1\n1,2,2\n1,3,3\n")
    out = tmp_path / "out"
    prepare_dataset(csv, out_dir=out)
    corrupt(out / CACHE_FILE, (out / CACHE_FILE).stat().st_size - 1)  # inside the last section
    with pytest.raises(CacheError, match="checksum mismatch"):
        load_dataset(out)
    with caplog.at_level("WARNING", logger="seqrec_fast.data"):
        assert prepare_dataset(csv, out_dir=out).n_interactions == 3
    assert "rebuilding" in caplog.text
    load_dataset(out)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:8] + (0).to_bytes(4, "little") + b[12:], "stale dataset cache: format version 0"),
        (lambda b: b"NOTACACHE" + b[9:], "bad magic bytes"),
        (lambda b: b[: len(b) // 2], "truncated|outside the file|checksum"),
        (lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:], "section table checksum"),
    ],
)
def test_damaged_caches_get_clear_errors(tmp_path, damage, message):
    synthesize("tiny").save(tmp_path)
    path = tmp_path / CACHE_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CacheError, match=message):
        load_dataset(tmp_path)


def test_missing_cache(tmp_path):
    with pytest.raises(CacheError, match="no dataset cache here"):
        load_dataset(tmp_path)


def test_failed_write_leaves_the_old_cache_and_no_temporary(tmp_path, monkeypatch):
    synthesize("tiny", seed=1).save(tmp_path)
    before = (tmp_path / CACHE_FILE).read_bytes()
    (tmp_path / "blocker").mkdir()
    with pytest.raises(CacheError):
        # writing onto a directory fails at the rename: nothing half-written may remain
        synthesize("tiny", seed=2)._sequences.save(str(tmp_path / "blocker"))
    assert (tmp_path / CACHE_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", CACHE_FILE]


def test_cli_prepare_synth_stats(tmp_path, capsys, ml100k_dir):
    assert main(["data", "prepare", str(ml100k_dir / "ml-100k.inter"), "--out", str(tmp_path / "ml"), "--json"]) == 0
    prepared = json.loads(capsys.readouterr().out)
    assert (prepared["users"], prepared["items"], prepared["interactions"]) == (943, 1682, 100_000)
    assert main(["data", "synth", "--preset", "tiny", "--seed", "3", "--out", str(tmp_path / "tiny")]) == 0
    assert "validation targets" in capsys.readouterr().out
    assert main(["data", "stats", str(tmp_path / "tiny"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats == {**synthesize("tiny", seed=3).stats(), "name": stats["name"]}
    assert stats["valid_targets"] == stats["test_targets"] == 300


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,time\n1,2,x\n")
    assert main(["data", "prepare", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "line 2: time 'x' is not a number" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path / "nothing")]) == 2
