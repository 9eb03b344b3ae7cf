"""People's own logs (``kuairec run --interactions FILE``): the formats real logs come in,
what the run says it understood, and the logs that cannot be evaluated, refused before
any model trains with a message that names the log. Also the date rule of the KuaiRec
folder: any year, but a date must agree with its timestamp."""

from __future__ import annotations

import gzip
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import numpy as np
import polars as pl
import pytest

from kuairec.cli import main
from kuairec.data.own_log import read_own_log
from kuairec.errors import DataError
from kuairec.evaluation.protocols import temporal_experiment

HEADER = "user_id,video_id,timestamp,watch_ratio"
T0 = 874_724_710  # 1997-09-20 03:05:10 UTC: MovieLens' first year


def _log(rows: list[str], header: str = HEADER) -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def _rows(n_users: int = 6, per_user: int = 8, ratio: str = "{r}") -> list[str]:
    """Users with several rows on different videos, times increasing per user."""
    out = []
    for u in range(n_users):
        for j in range(per_user):
            r = 0.5 + ((u * 7 + j * 3) % 10) / 2  # 0.5 .. 5.0: every label has positives
            out.append(f"{u},{(u + j) % 12},{T0 + 3600 * (u * per_user + j)},{ratio.format(r=r)}")
    return out


# ---------------------------------------------------------------- formats
def test_milliseconds_and_microseconds_are_detected_and_said(tmp_path: Path) -> None:
    base = read_own_log(_write(tmp_path / "s.csv", _log(_rows())))
    for unit, factor in (("milliseconds", 1_000), ("microseconds", 1_000_000)):
        rows = [_scale_time(r, factor) for r in _rows()]
        log = read_own_log(_write(tmp_path / f"{unit}.csv", _log(rows)))
        np.testing.assert_allclose(log.timestamp, base.timestamp, rtol=0, atol=1e-3)
        assert any(f"unix {unit}, converted to seconds" in n for n in log.notes), log.notes
    assert any("from 1997-09-20 03:05 to 1997-09-22" in n for n in base.notes), base.notes


def test_iso_date_times_and_empty_timestamps(tmp_path: Path) -> None:
    text = _log([
        "a,1,1997-09-20 03:05:10,1.0",
        "a,2,1997-09-20T05:05:10+02:00,2.5",  # an offset: the same instant as 03:05:10 UTC
        "a,3,1997-09-21,3.0",
        "a,4,,4.0",  # no timestamp: the oldest of its user's rows
    ])  # fmt: skip
    log = read_own_log(_write(tmp_path / "iso.csv", text))
    assert log.timestamp[:3].tolist() == [T0, T0, 874_800_000.0]
    assert np.isnan(log.timestamp[3])
    assert any("1 of 4 rows have none" in n and "oldest" in n for n in log.notes)
    train, test = temporal_experiment(_write(tmp_path / "iso.csv", text), test_fraction=0.25)
    # the last row by time is the 1997-09-21 one; the row without a time stays in training
    assert train.items.to_raw(test.relevance.indices).tolist() == [3]


def test_ids_as_written_text_hashes_and_floats(tmp_path: Path) -> None:
    big = 18446744073709500202  # beyond int64: an unsigned 64-bit hash, not text
    text = _log([f"u_1,{big},{T0},1.0", f"u_2,202.0,{T0 + 1},2.0", f"u_1,202,{T0 + 2},3.0"])
    log = read_own_log(_write(tmp_path / "ids.csv", text))
    assert log.users.kind == "text" and log.users.to_raw([0, 1]).tolist() == ["u_1", "u_2"]
    assert log.items.kind == "uint" and log.items.raw.tolist() == [202, big]
    assert log.item_idx.tolist() == [1, 0, 0]  # 202.0 and 202 are one video
    assert log.items.to_index([big, 202]).tolist() == [1, 0]
    assert log.items.to_index([-1, 7], unknown="mask").tolist() == [-1, -1]
    notes = " ".join(log.notes)
    assert "user_id: read as text ids (e.g. 'u_1')" in notes
    assert f"ids beyond 2^63 - 1 (e.g. {big}) are read as unsigned 64-bit integers" in notes
    assert "ids written like 202.0 are read as integers" in notes


def test_every_accepted_format_reads_the_same_log(tmp_path: Path) -> None:
    rows = _rows()
    plain = read_own_log(_write(tmp_path / "log.csv", _log(rows)))
    zipped = tmp_path / "log.csv.gz"
    zipped.write_bytes(gzip.compress(_log(rows).encode()))
    frame = pl.read_csv(tmp_path / "log.csv")
    frame.write_parquet(tmp_path / "log.parquet")
    frame.with_columns(pl.from_epoch("timestamp", time_unit="s")).write_parquet(tmp_path / "t.pq")
    for path in (zipped, tmp_path / "log.parquet", tmp_path / "t.pq"):
        log = read_own_log(path)
        for field in ("user_idx", "item_idx", "timestamp", "watch_ratio"):
            np.testing.assert_array_equal(getattr(log, field), getattr(plain, field), field)
        assert log.users.raw.tolist() == plain.users.raw.tolist()
    assert "gzip-compressed CSV" in read_own_log(zipped).notes[0]
    assert "a Parquet file" in read_own_log(tmp_path / "log.parquet").notes[0]


@pytest.mark.parametrize(
    ("make", "parts"),
    [
        (lambda: __import__("bz2").compress(_log(_rows()).encode()), ["bzip2"]),
        (lambda: b"\x1f\x8b" + b"\x00" * 40, ["damaged gzip"]),
        (lambda: b"PAR1" + b"\x00" * 40, ["cannot read as Parquet"]),
        (lambda: _log(["1,2,1997-09-20,1", "1,3,12,1"]).encode(), ["line 3", "found '12'"]),
    ],
)
def test_unreadable_logs_are_named(tmp_path: Path, make, parts: list[str]) -> None:
    path = tmp_path / "log.bin"
    path.write_bytes(make())
    with pytest.raises(DataError) as info:
        read_own_log(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# ---------------------------------------------------------------- logs that cannot be evaluated
@pytest.mark.parametrize(
    ("rows", "parts"),
    [
        ([f"1,2,{T0},1.0"], ["the log names 1 video"]),
        ([f"{u},{u},{T0},1.0" for u in range(4)], ["no test pair", "4 users (0 with 2 rows"]),
        ([f"{u},7,{T0 + u},1.0" for u in range(5)] * 2, ["names 1 video"]),
        ([f"1,2,{T0},1.0", f"1,3,{T0 + 1},1.0"] * 1 + [f"1,3,{T0 + 2},2.0"] * 3,
         ["no test pair", "2 distinct (user, video) pairs"]),
    ],
    ids=["one_row", "one_row_per_user", "one_video", "duplicates_only"],
)  # fmt: skip
def test_logs_without_a_test_pair_are_refused_naming_the_log(
    tmp_path: Path, rows: list[str], parts: list[str]
) -> None:
    path = _write(tmp_path / "mine.csv", _log(rows))
    with pytest.raises(DataError) as info:
        temporal_experiment(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "small_matrix" not in message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize(
    ("ratio", "label", "parts"),
    [
        ("1.0", None, ["label 'wr>2'", "wr>2: 0", "wr>=1: 6", "--label 'wr>=1'"]),
        ("0", "wr>=1", ["wr>=1: 0", "wr>0: 0", "no label gives a positive"]),
    ],
    ids=["click_log", "all_zero"],
)
def test_no_positive_under_the_label_is_refused_before_training(
    tmp_path: Path, capsys, monkeypatch, ratio: str, label: str | None, parts: list[str]
) -> None:
    """A click log under the default label used to train every model and then crash on
    a null NDCG (TypeError, nothing written)."""
    from kuairec.models.base import Recommender

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(Recommender, "fit", no_training)
    path = _write(tmp_path / "clicks.csv", _log(_rows(ratio=ratio)))
    argv = ["run", "--interactions", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]
    argv += ["--models", "popularity", "--no-tune"] + (["--label", label] if label else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: no positive test pair")
    for part in parts:
        assert part in err, (part, err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_interactions_imply_the_temporal_protocol_and_notes_are_written(
    tmp_path: Path, capsys
) -> None:
    import json

    rows = [r.replace(",", ",v", 1) for r in _rows()]  # text video ids
    path = tmp_path / "mine.csv.gz"
    path.write_bytes(gzip.compress(_log(rows).encode()))
    argv = ["run", "--interactions", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"]
    assert main([*argv, "--models", "popularity", "--no-tune", "--bootstrap", "10"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "metrics.json").read_text())
    assert doc["protocol"]["name"] == "temporal"
    assert any("gzip-compressed CSV" in n for n in doc["notes"])
    assert any("video_id: read as text ids (e.g. 'v0')" in n for n in doc["notes"])
    recs = pl.read_parquet(run_dir / "recommendations" / "popularity.parquet")
    assert recs["video_id"].dtype == pl.String and recs["video_id"][0].startswith("v")
    assert recs["user_id"].dtype == pl.Int64
    model_dir = run_dir / "models" / "popularity"
    capsys.readouterr()  # the run's own output
    argv = ["recommend", "--model-dir", str(model_dir), "--user", str(recs["user_id"][0])]
    assert main([*argv, "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["video_id"] for r in rows] == recs["video_id"][:3].to_list()


@pytest.mark.parametrize(
    ("extra", "parts"),
    [
        (["--protocol", "kuairec"], ["--interactions is read only by the temporal protocol"]),
        (["--protocol", "temporal", "--data", "somewhere"], ["--data is not read by the temporal"]),
    ],
)
def test_interactions_beside_another_protocol_or_data_are_refused(
    tmp_path: Path, capsys, extra: list[str], parts: list[str]
) -> None:
    path = _write(tmp_path / "mine.csv", _log(_rows()))
    assert main(["run", "--interactions", str(path), *extra, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for part in parts:
        assert part in err, (part, err)


# ---------------------------------------------------------------- the KuaiRec folder's dates
def test_a_kuairec_folder_from_1997_loads(tmp_path: Path) -> None:
    """No window of years: the same tiny folder moved back 23 years (dates and
    timestamps together) loads, with the same pairs."""
    from kuairec.data.load import load_dataset

    shift = 8401 * 86_400  # 2020-07-05 -> 1997-07-05 (8401 days)

    def back(row: str) -> str:
        f = row.split(",")
        if f[6]:
            f[4] = f[4].replace("2020-", "1997-")
            f[5] = f[5].replace("2020", "1997")
            f[6] = repr(float(f[6]) - shift)
        return ",".join(f)

    files = {
        "big_matrix.csv": fx.big_text([back(r) for r in fx.BIG_ROWS]),
        "small_matrix.csv": fx.MATRIX_HEADER + "\n" + "\n".join(map(back, fx.SMALL_ROWS)) + "\n",
    }
    old = load_dataset(fx.write_tiny_folder(tmp_path / "old", replace=files), progress=False)
    new = load_dataset(fx.write_tiny_folder(tmp_path / "new"), progress=False)
    assert old.big.nnz == new.big.nnz and old.small.nnz == new.small.nnz
    np.testing.assert_allclose(old.big.last_timestamp, new.big.last_timestamp - shift)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _scale_time(row: str, factor: int) -> str:
    f = row.split(",")
    f[2] = str(int(f[2]) * factor)
    return ",".join(f)
