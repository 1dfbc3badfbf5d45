"""Input that used to merge ids silently, crash with a traceback or read wrongly: zero-padded and
huge ids, dates, delimiters, compressed and Latin-1 files, impossible options (issue 16, findings
5, 8 and 9's data cases)."""

from __future__ import annotations

import datetime
import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec_fast.cli import main
from seqrec_fast.data import DataFormatError, prepare_dataset


def write(path, text: str):
    path.write_text(text)
    return path


def sequences(ds) -> dict:
    """Raw user id -> raw item ids in time order."""
    users, items = ds.user_ids().to_pylist(), ds.item_ids().to_pylist()
    return {users[u]: [items[i - 1] for i in ds.sequence(u)] for u in range(ds.n_users)}


PADDED = "user,item,time\n007,01,1\n7,1,2\n07,01,3\n7,01,4\n"
PADDED_SEQUENCES = {"007": ["01"], "07": ["01"], "7": ["1", "01"]}


# -- finding 5: zero-padded ids ----------------------------------------------------------------
def test_zero_padded_csv_ids_are_read_as_strings_and_never_merge(tmp_path):
    ds = prepare_dataset(write(tmp_path / "log.csv", PADDED))
    assert (ds.n_users, ds.n_items) == (3, 2)
    assert sequences(ds) == PADDED_SEQUENCES


def test_csv_tsv_parquet_and_recbole_agree_on_zero_padded_ids(tmp_path):
    rows = [line.split(",") for line in PADDED.splitlines()[1:]]
    tsv = write(tmp_path / "log.tsv", "user\titem\ttime\n" + "".join("\t".join(r) + "\n" for r in rows))
    inter = write(tmp_path / "log.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
                  + "".join("\t".join(r) + "\n" for r in rows))
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [r[0] for r in rows], "item": [r[1] for r in rows],
                             "time": [int(r[2]) for r in rows]}), parquet)
    for path in (tsv, inter, parquet):
        assert sequences(prepare_dataset(path)) == PADDED_SEQUENCES, path


def test_whole_number_ids_stay_integers(tmp_path):
    ds = prepare_dataset(write(tmp_path / "log.csv", "user,item,time\n10,100,1\n10,-3,2\n0,100,3\n"))
    assert ds.user_ids().to_pylist() == [0, 10] and ds.item_ids().to_pylist() == [-3, 100]


def test_zero_padding_further_down_rereads_the_column_as_strings(tmp_path, monkeypatch):
    from seqrec_fast.data import readers

    monkeypatch.setattr(readers, "_BLOCK_SIZE", 64)  # many blocks: the first ones look numeric
    rows = "".join(f"{u % 7},{u},{u}\n" for u in range(200))
    ds = prepare_dataset(write(tmp_path / "log.csv", "user,item,time\n" + rows + "3,007,500\n3,7,501\n"))
    items = ds.item_ids().to_pylist()
    assert "007" in items and "7" in items and ds.n_items == 201
    assert ds.user_ids().to_pylist() == [0, 1, 2, 3, 4, 5, 6]


def test_id_type_option_forces_strings_or_integers(tmp_path):
    path = write(tmp_path / "log.csv", PADDED)
    as_int = prepare_dataset(path, id_type="int")
    assert as_int.user_ids().to_pylist() == [7] and as_int.item_ids().to_pylist() == [1]
    plain = write(tmp_path / "plain.csv", "user,item,time\n1,2,3\n1,3,4\n")
    assert prepare_dataset(plain, id_type="string").user_ids().to_pylist() == ["1"]
    with pytest.raises(DataFormatError, match=r"bad.csv: line 3: user id 'x1' is not an integer.*id_type"):
        prepare_dataset(write(tmp_path / "bad.csv", "user,item\n1,2\nx1,3\n"), id_type="int")
    with pytest.raises(DataFormatError, match="id_type"):
        prepare_dataset(plain, id_type="number")


def test_cli_id_type(tmp_path, capsys):
    path = write(tmp_path / "log.csv", PADDED)
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "a"), "--json"]) == 0
    assert '"users": 3' in capsys.readouterr().out
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "b"), "--id-type", "int", "--json"]) == 0
    assert '"users": 1' in capsys.readouterr().out


# -- finding 8: inputs that raised tracebacks --------------------------------------------------
def test_date_only_timestamps_in_csv_and_parquet(tmp_path):
    ds = prepare_dataset(write(tmp_path / "log.csv", "user,item,date\n1,a,2020-01-05\n1,b,2020-01-03\n1,c,2020-01-04\n"))
    assert sequences(ds) == {1: ["b", "c", "a"]}
    assert ds.times[0] == int(datetime.datetime(2020, 1, 3, tzinfo=datetime.timezone.utc).timestamp())
    dates = [datetime.date(2020, 1, 5), datetime.date(2020, 1, 3), datetime.date(2020, 1, 4)]
    pq.write_table(pa.table({"user": [1, 1, 1], "item": ["a", "b", "c"], "date": pa.array(dates, pa.date32())}),
                   tmp_path / "log.parquet")
    parquet = prepare_dataset(tmp_path / "log.parquet")
    assert sequences(parquet) == {1: ["b", "c", "a"]}
    assert list(parquet.times) == list(ds.times)


def test_ids_beyond_64_bits_are_strings_unless_integers_are_forced(tmp_path):
    big = 2**63
    path = write(tmp_path / "log.csv", f"user,item\n{big},1\n{big + 1},1\n1,2\n")
    ds = prepare_dataset(path)
    assert sorted(ds.user_ids().to_pylist()) == sorted([str(big), str(big + 1), "1"])
    with pytest.raises(DataFormatError, match=rf"log.csv: line 2: user id '{big}' does not fit a 64-bit integer"):
        prepare_dataset(path, id_type="int")
    pq.write_table(pa.table({"user": pa.array([big, 1], pa.uint64()), "item": [1, 2]}), tmp_path / "u64.parquet")
    assert sorted(prepare_dataset(tmp_path / "u64.parquet").user_ids().to_pylist()) == ["1", str(big)]


def test_timestamps_beyond_64_bits_name_the_line(tmp_path):
    with pytest.raises(DataFormatError, match=r"line 3: timestamp .* is not a finite number >= 0 below 2\^63"):
        prepare_dataset(write(tmp_path / "log.csv", f"user,item,time\n1,2,3\n1,3,{2**64}\n"))
    with pytest.raises(DataFormatError, match=r"line 3: timestamp .* below 2\^63"):
        prepare_dataset(write(tmp_path / "float.csv", "user,item,time\n1,2,3\n1,3,1e19\n"))


def test_delimiter_typed_as_backslash_t(tmp_path, capsys):
    path = write(tmp_path / "log.txt", "user\titem\ttime\n1\t2\t3\n1\t3\t4\n")
    assert prepare_dataset(path, delimiter="\\t").n_interactions == 2
    assert main(["data", "prepare", str(path), "--out", str(tmp_path / "o"), "--delimiter", "\\t", "--json"]) == 0
    assert '"interactions": 2' in capsys.readouterr().out
    with pytest.raises(DataFormatError, match="delimiter"):
        prepare_dataset(path, delimiter="::")


@pytest.mark.parametrize("options, pattern", [
    (dict(k_core=-1), r"k_core \(--k-core\): expected an integer >= 0, got -1"),
    (dict(min_seq_len=0), r"min_seq_len \(--min-seq-len\): expected an integer >= 1, got 0"),
    (dict(split="temporal", valid_fraction=0.6, test_fraction=0.6), r"valid_fraction.*test_fraction.*below 1"),
    (dict(split="temporal", valid_fraction=-0.1), r"valid_fraction"),
    (dict(split="temporal", test_fraction=float("nan")), r"test_fraction"),
    (dict(min_rating=float("inf")), r"min_rating"),
])
def test_impossible_prepare_options_are_refused_before_reading(tmp_path, options, pattern):
    with pytest.raises(DataFormatError, match=pattern):
        prepare_dataset(tmp_path / "not-read.csv", **options)


def test_cli_impossible_options_exit_2_with_one_line(tmp_path, capsys):
    path = write(tmp_path / "log.csv", "user,item\n1,2\n")
    for extra in (["--k-core", "-1"], ["--split", "temporal", "--valid-fraction", "0.5", "--test-fraction", "0.7"]):
        assert main(["data", "prepare", str(path), "--out", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(("user,item,time\n" + "".join(f"{u},{u * 7 % 13},{u}\n" for u in range(5000))).encode())
    path = tmp_path / "log.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"log.csv.gz: .*(truncated|corrupt|compressed)"):
        prepare_dataset(path)


# -- finding 9: misread files and misleading messages ------------------------------------------
def test_compressed_files_are_detected_by_the_name_under_the_suffix(tmp_path):
    tsv = tmp_path / "log.tsv.gz"
    tsv.write_bytes(gzip.compress(b"user\titem\ttime\n1\t2\t3\n1\t3\t4\n"))
    assert prepare_dataset(tsv).n_interactions == 2
    dat = tmp_path / "ratings.dat.gz"
    dat.write_bytes(gzip.compress(b"1::10::5::100\n1::20::4::99\n2::10::3::7\n"))
    ds = prepare_dataset(dat)
    assert sequences(ds) == {1: [20, 10], 2: [10]}
    inter = tmp_path / "x.inter.gz"
    inter.write_bytes(gzip.compress(b"user_id:token\titem_id:token\ttimestamp:float\n007\t1\t1\n7\t1\t2\n"))
    assert sorted(prepare_dataset(inter).user_ids().to_pylist()) == ["007", "7"]


def test_latin1_file_gets_an_encoding_message_and_reads_with_the_encoding_option(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes("user,item,time\nana,caf\xe9,1\nana,the,2\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"(?i)log.csv: line 2: .*not valid utf-8 text.*--encoding") as info:
        prepare_dataset(path)
    assert "binary" not in str(info.value)
    assert sequences(prepare_dataset(path, encoding="latin-1")) == {"ana": ["caf\xe9", "the"]}
    with pytest.raises(DataFormatError, match="encoding"):
        prepare_dataset(path, encoding="no-such-codec")


@pytest.mark.parametrize("text, line", [("user,item,time\n1,2,3\n1,2\n", 3), ("user,item,time\n1,2\n", 2)])
def test_rows_with_a_wrong_number_of_fields_name_their_line(tmp_path, text, line):
    with pytest.raises(DataFormatError, match=rf"log.csv: line {line}: Expected 3 columns, got 2"):
        prepare_dataset(write(tmp_path / "log.csv", text))


def test_errors_after_the_rating_filter_name_the_files_line(tmp_path, monkeypatch):
    from seqrec_fast.data import readers

    # Let a bad time through the readers' checks so that the Rust builder is the one to find it.
    monkeypatch.setattr(readers, "check_block", lambda table, *_: table)
    path = write(tmp_path / "log.csv", "user,item,rating,time\n1,2,1,3\n1,3,1,4\n1,4,5,-7\n")
    with pytest.raises(DataFormatError, match=r"log.csv: line 4: time column: timestamp -7 is negative") as info:
        prepare_dataset(path, min_rating=3)
    assert "kept row" not in str(info.value)
