"""Readers, column mapping, filters and bad input: every format on small files in tmp_path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec_fast.data import DataFormatError, from_interactions, prepare_dataset

ROWS = [  # user, item, rating, time
    (10, 100, 5, 30),
    (10, 200, 3, 10),
    (10, 300, 4, 20),
    (20, 100, 1, 5),
    (20, 300, 5, 6),
    (20, 400, 2, 7),
]
# user 10 in time order: 200, 300, 100; user 20: 100, 300, 400
EXPECTED_RAW = {10: [200, 300, 100], 20: [100, 300, 400]}


def raw_sequences(ds) -> dict:
    users = ds.user_ids().to_pylist()
    items = ds.item_ids().to_pylist()
    return {
        int(users[u]): [int(items[i - 1]) for i in ds.sequence(u)]
        for u in range(ds.n_users)
    }


def write(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name, text, fmt",
    [
        ("log.csv", "user_id,item_id,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS), "auto"),
        ("log.tsv", "userId\tmovieId\trating\ttimestamp\n" + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS), "auto"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r}.0,{t}\n" for u, i, r, t in ROWS), "movielens"),
        ("u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS), "auto"),
        ("ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS), "auto"),
        ("x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS), "auto"),
    ],
)
def test_every_text_format_reads_the_same_sequences(tmp_path, name, text, fmt):
    ds = prepare_dataset(write(tmp_path / name, text), fmt)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 4, 6)
    assert {u: s for u, s in raw_sequences(ds).items()} == EXPECTED_RAW


def test_parquet_with_column_mapping_and_string_ids(tmp_path):
    table = pa.table({
        "who": [f"u{u}" for u, *_ in ROWS],
        "what": [f"i{i}" for _, i, _, _ in ROWS],
        "when": [t for *_, t in ROWS],
    })
    pq.write_table(table, tmp_path / "log.parquet")
    ds = prepare_dataset(tmp_path / "log.parquet", columns={"user": "who", "item": "what", "time": "when"})
    assert ds.user_ids().to_pylist() == ["u10", "u20"]
    assert ds.item_ids().to_pylist() == ["i100", "i200", "i300", "i400"]
    assert [ds.item_ids()[i - 1].as_py() for i in ds.sequence(0)] == ["i200", "i300", "i100"]


def test_rating_threshold_and_k_core(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,rating,time\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS))
    ds = prepare_dataset(path, min_rating=3)
    assert raw_sequences(ds) == {10: [200, 300, 100], 20: [300]}
    # item 300 is the only item with two interactions among the kept rows -> 2-core empties all
    with pytest.raises(DataFormatError, match="no interactions are left"):
        prepare_dataset(path, min_rating=3, k_core=2)
    ds = prepare_dataset(path, min_seq_len=3, min_rating=2)  # user 20 keeps 300, 400 -> dropped
    assert list(raw_sequences(ds)) == [10]


def test_without_time_file_order_is_time_order(tmp_path):
    ds = prepare_dataset(write(tmp_path / "log.csv", "user,item\n1,5\n1,3\n1,4\n"))
    assert [ds.item_ids()[i - 1].as_py() for i in ds.sequence(0)] == [5, 3, 4]


def test_ties_in_time_keep_file_order_and_duplicates_are_dropped(tmp_path, caplog):
    path = write(tmp_path / "log.csv", "user,item,time\n1,9,5\n1,7,5\n1,9,5\n1,8,1\n1,9,6\n")
    with caplog.at_level("INFO", logger="seqrec_fast.data"):
        ds = prepare_dataset(path)
    assert [ds.item_ids()[i - 1].as_py() for i in ds.sequence(0)] == [8, 9, 7, 9]
    assert "1 exact duplicate" in caplog.text
    kept = prepare_dataset(path, drop_duplicates=False)
    assert kept.n_interactions == 5


def test_ml100k_prepares_to_its_known_size(ml100k_dir):
    ds = prepare_dataset(ml100k_dir / "ml-100k.inter")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100_000)
    lengths = np.diff(ds.offsets)
    assert lengths.min() >= 20
    assert all(np.all(np.diff(ds.times[ds.offsets[u]:ds.offsets[u + 1]]) >= 0) for u in range(0, 943, 50))


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("user,item,time\n1,2,3\n1,3,abc\n", r"line 3: time 'abc' is not a number"),
        ("user,item,time\n1,2,3\n1,3,nan\n", r"line 3: timestamp nan is not a finite number"),
        ("user,item,time\n1,2,3\n1,3,-4\n", r"line 3: timestamp -4 is not a finite number >= 0"),
        ("user,item,time\n1,2,3\n1,,4\n", r"line 3: the item column is empty"),
        ("user,product,time\n1,2,3\n", r"no item column.*columns \['user', 'product', 'time'\]"),
        ("user,item,time\n", r"no interaction rows"),
        ("", r"the file is empty"),
        ("user,item,time\n1,2\n", r"Expected 3 columns"),
    ],
)
def test_bad_input_is_reported_with_file_line_and_column(tmp_path, text, pattern):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataFormatError, match=pattern) as info:
        prepare_dataset(path)
    assert str(path) in str(info.value)


def test_mapped_column_that_is_missing_is_named(tmp_path):
    path = write(tmp_path / "log.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(DataFormatError, match=r"no column 'user_id' \(for user\).*\['a', 'b', 'c'\]"):
        prepare_dataset(path, columns={"user": "user_id", "item": "b"})


def test_bad_recbole_header(tmp_path):
    path = write(tmp_path / "x.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataFormatError, match="line 1: header field 'user_id' lacks a type"):
        prepare_dataset(path)


def test_rating_threshold_errors_point_to_original_lines(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,rating,time\n1,2,1,3\n1,3,5,4\n1,4,x,5\n")
    with pytest.raises(DataFormatError, match="line 4: rating 'x' is not a number"):
        prepare_dataset(path, min_rating=3)


def test_single_interaction_users_train_only_and_are_logged(caplog):
    with caplog.at_level("INFO", logger="seqrec_fast.data"):
        ds = from_interactions([1, 2, 2, 3, 3, 3], [1, 1, 2, 1, 2, 3], [0, 0, 1, 0, 1, 2])
    assert list(ds.valid_pos) == [-1, -1, 4]
    assert list(ds.test_pos) == [-1, 2, 5]
    assert "2 users have no validation target and 1 no test target" in caplog.text
    assert from_interactions([1, 2, 2, 3, 3, 3], [1, 1, 2, 1, 2, 3], min_seq_len=3).n_users == 1


def test_recbole_non_numeric_float_field_names_line_and_column(tmp_path):
    path = write(tmp_path / "x.inter", "extra:token\tuser_id:token\titem_id:token\ttimestamp:float\na\t1\t2\t3\nb\t1\t3\tsoon\n")
    with pytest.raises(DataFormatError, match=r"line 3: time 'soon' is not a number"):
        prepare_dataset(path)


@pytest.fixture
def small_blocks(monkeypatch):
    """Makes the CSV reader stream many small blocks, as it does on big files."""
    from seqrec_fast.data import readers

    monkeypatch.setattr(readers, "_BLOCK_SIZE", 64)


def test_rows_are_numbered_across_blocks(tmp_path, small_blocks):
    rows = "".join(f"{u % 7},{u},{u}\n" for u in range(200))
    path = write(tmp_path / "log.csv", "user,item,time\n" + rows + "3,4,-1\n")
    with pytest.raises(DataFormatError, match=r"line 202: timestamp -1 is not a finite number"):
        prepare_dataset(path)


def test_a_column_that_turns_to_text_later_is_reread_as_text(tmp_path, small_blocks):
    rows = "".join(f"{u % 7},{u},{u}\n" for u in range(200))
    path = write(tmp_path / "log.csv", "user,item,time\n" + rows + "x7,4,500\n")
    ds = prepare_dataset(path)
    assert ds.n_users == 8 and ds.n_interactions == 201
    assert "x7" in ds.user_ids().to_pylist()
    bad_time = write(tmp_path / "bad.csv", "user,item,time\n" + rows + "3,4,soon\n")
    with pytest.raises(DataFormatError, match=r"line 202: time 'soon' is not a number"):
        prepare_dataset(bad_time)


def test_parquet_row_numbers(tmp_path):
    pq.write_table(pa.table({"user": [1, 2], "item": [3, 4], "time": [5.0, float("nan")]}), tmp_path / "x.parquet")
    with pytest.raises(DataFormatError, match=r"x.parquet: row 1: timestamp nan"):
        prepare_dataset(tmp_path / "x.parquet")
