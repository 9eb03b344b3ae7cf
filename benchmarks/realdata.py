"""Convert public real interaction data into KuaiRec's own-log schema (development data).

Writes ``<out>/<name>/interactions.csv`` with the columns ``user_id, video_id, timestamp,
watch_ratio`` (plus the source's own signal, ``rating`` or ``plays``, which the loader
ignores) for ``kuairec run --protocol temporal --interactions FILE`` (docs/run.md). The
data stays outside the repository: never commit it (the MovieLens 100K and Last.fm
licences forbid redistribution or commercial use; see /work/devdata/README.md).

Why these mappings. A KuaiRec label is a rule on watch_ratio: ``wr>2`` (the run's default:
a strong positive, "watched it twice"), ``wr>=1`` (a weaker positive, "watched to the
end") and ``graded`` (gain ``min(wr, 5)``). Each source's signal is mapped so that the
three labels keep those meanings:

- **MovieLens ratings** (1-5 stars, half stars in ml-latest-small):
  ``watch_ratio = max(rating - 1.75, 0)``. Then ``wr>2`` is exactly ``rating >= 4``, the
  positive rule of Liang et al. (WWW 2018, Mult-VAE) and most implicit-feedback MovieLens
  studies; ``wr>=1`` is ``rating >= 3`` (at least a middling opinion); the graded gain
  rises by 1 per star (5 stars: 3.25, 4: 2.25, 3: 1.25, 2: 0.25, 1 and below: 0). No
  linear map through 0 can put both thresholds between whole/half stars, hence the offset.
  Every rated pair is an interaction (the user saw it), as every KuaiRec view is.
- **Last.fm HetRec 2011 (2K users)**: an interaction is a (user, artist) pair the user
  tagged, timed by the first tag (the file has day-level dates, mostly the 1st of the
  month: many ties, which the protocol breaks by file order); its strength is the user's
  play count of that artist divided by the median play count over the user's listened
  artists (``user_artists.dat`` lists each user's top 50): ``wr>2`` = played more than
  twice as much as the user's typical favourite artist, ``wr>=1`` = at least as much. A
  tagged artist outside the user's top 50 gets ``watch_ratio = 0`` (seen, not a
  positive under any label). Ratios are capped at 100 (the loader takes up to 10,000;
  the graded gain clips at 5 anyway). Tag dates before 2005 (5 rows dated 1956-1979,
  before Last.fm existed) are dropped.

Timestamps: the loader accepts 2000-01-01 .. 2100-01-01 only, so data recorded before 2000
is shifted by a whole number of days (``shift_days`` below). Only order and gaps matter to
the temporal protocol and the validation split; the shift keeps both.

Sources are read from a git snapshot (``--mirror``: the folder holding ``owner+name/repo``
snapshots; the repository, commit and path of each file are pinned below) or from a file
you downloaded yourself (``--raw``; for lastfm-2k the folder holding both ``.dat`` files).

    python benchmarks/realdata.py all --mirror /work/.mirror --out /work/devdata
    python benchmarks/realdata.py ml-100k --raw ~/Downloads/ml-100k/u.data --out /tmp/dev
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DAY = 86_400
LOADER_MIN_TS = 946_684_800  # 2000-01-01 UTC, kuairec.data.schema.RANGES["timestamp"]


@dataclass(frozen=True)
class Source:
    """Where a data set's raw files live in a public repository snapshot."""

    repo: str  # owner/name on GitHub
    commit: str
    paths: tuple[str, ...]
    blobs: tuple[str, ...]  # git object ids of ``paths`` (the files as converted)
    rows_md5: tuple[str, ...]  # MD5 of each file's data lines (header and ``drop`` removed)
    licence: str
    shift_days: int = 0
    header: bool = True  # does each file start with a header line?
    drop: bytes = b""  # data lines starting with this were added by the snapshot's author


SOURCES: dict[str, Source] = {
    "ml-100k": Source(
        "Devsart/SparkCourse",
        "521b9a38199b9234755c49d295b2a88aef0a724e",
        ("ml-100k/u.data",),
        ("79bf1d68b6027e4ab4e43c389af14f7beedd839b",),
        ("6e47046882bad158b0efbb84cd5cb987",),
        "GroupLens research licence: research use only, no redistribution without "
        "permission, no commercial use (ml-100k/README)",
        shift_days=3650,
        header=False,
        drop=b"0\t",  # a Spark course's hand-made user 0 (MovieLens ids start at 1)
    ),
    "ml-latest-small": Source(
        "Muellersen/Recommender-Systems",
        "e08f23294961f0b64ddca5a6128f25ad20885f98",
        ("ml-latest-small/ratings.csv",),
        ("cf3c9be6f60970c07f19f93a1c4ec7741578b5b5",),
        ("5fa5c3ed85f1af2179d9e51690eec704",),
        "GroupLens research licence: research use, redistribution under the same "
        "licence, no commercial use (ml-latest-small/README.txt)",
        shift_days=3650,
    ),
    "lastfm-2k": Source(
        "Coder-Yu/QRec",
        "734bcdb59796020fa0f0825ef8ae85703c774967",
        ("dataset/lastfm-2k/user_taggedartists.dat", "dataset/lastfm-2k/user_artists.dat"),
        ("c410ef8dc88b7e743022f7d149462bae90046d96", "14d6b2b2bd6c31ce5f8a3c1f83ebe6c55c79183b"),
        ("259a5628672c250e61243df5ddf8bb3b", "82f60d13beef60da44ce8174ae6e457d"),
        "HetRec 2011 Last.fm: non-commercial use only (hetrec2011-lastfm-2k readme.txt)",
    ),
}


def read_raw(name: str, mirror: Path | None, raw: Path | None) -> list[bytes]:
    """The raw files of ``name``: from ``raw`` (a file, or a folder for lastfm-2k) or from
    the pinned blobs of the repository snapshot under ``mirror``."""
    src = SOURCES[name]
    if raw is not None:
        files = [raw / Path(p).name for p in src.paths] if raw.is_dir() else [raw]
        for f in files:
            if not f.is_file():
                sys.exit(f"{name}: {f} does not exist (expected {', '.join(src.paths)})")
        return [f.read_bytes() for f in files]
    if mirror is None:
        sys.exit(f"{name}: give --mirror (snapshots of {src.repo}) or --raw FILE")
    git_dir = mirror / src.repo.replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():
        git_dir = git_dir / ".git"
    out = []
    for path, blob in zip(src.paths, src.blobs, strict=True):
        res = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "-p", blob], capture_output=True
        )
        if res.returncode != 0:
            sys.exit(f"{name}: cannot read {src.repo}@{src.commit}:{path} from {git_dir}")
        out.append(res.stdout)
    return out


def data_lines(name: str, files: list[bytes], verify: bool = True) -> list[bytes]:
    """Each raw file's data lines: the header and the snapshot author's additions
    (``Source.drop``) removed, checked against the pinned MD5 (``verify``)."""
    import hashlib

    src = SOURCES[name]
    out = []
    for path, data, md5 in zip(src.paths, files, src.rows_md5, strict=True):
        lines = data.splitlines(keepends=True)[1 if src.header else 0 :]
        if src.drop:
            lines = [line for line in lines if not line.startswith(src.drop)]
        body = b"".join(lines)
        if verify and hashlib.md5(body).hexdigest() != md5:
            sys.exit(
                f"{name}: the data lines of {path} differ from the pinned copy (MD5 {md5}); "
                "--no-verify converts them anyway"
            )
        out.append(body)
    return out


def movielens(data: bytes, sep: str, shift_days: int):
    """MovieLens rating lines -> the log (watch_ratio = max(rating - 1.75, 0))."""
    import polars as pl

    names = ["user_id", "video_id", "rating", "timestamp"]
    df = pl.read_csv(
        io.BytesIO(data), separator=sep, has_header=False, new_columns=names,
        schema_overrides={"rating": pl.Float64, "timestamp": pl.Int64},
    )  # fmt: skip
    return df.select(
        "user_id",
        "video_id",
        (pl.col("timestamp") + shift_days * DAY).alias("timestamp"),
        (pl.col("rating") - 1.75).clip(lower_bound=0.0).round(4).alias("watch_ratio"),
        "rating",
    )


def lastfm(tags: bytes, plays: bytes):
    """HetRec Last.fm 2K lines -> the log (a tagged artist, its relative play count)."""
    import polars as pl

    def read(data: bytes, names: list[str]):  # noqa: ANN202
        return pl.read_csv(io.BytesIO(data), separator="\t", has_header=False, new_columns=names)

    t = read(tags, ["userID", "artistID", "tagID", "day", "month", "year"])
    t = t.filter(pl.col("year") >= 2005)
    a = read(plays, ["userID", "artistID", "weight"])
    a = a.with_columns(rel=pl.col("weight") / pl.col("weight").median().over("userID"))
    first = (
        t.with_columns(date=pl.date(pl.col("year"), pl.col("month"), pl.col("day")))
        .group_by("userID", "artistID")
        .agg(pl.col("date").min())
    )
    df = first.join(a, on=["userID", "artistID"], how="left")
    return df.select(
        pl.col("userID").alias("user_id"),
        pl.col("artistID").alias("video_id"),
        (pl.col("date").cast(pl.Datetime("ms")).dt.epoch("s")).alias("timestamp"),
        pl.col("rel").fill_null(0.0).clip(upper_bound=100.0).round(4).alias("watch_ratio"),
        pl.col("weight").fill_null(0).alias("plays"),
    )


def convert(name: str, files: list[bytes], verify: bool = True):
    """The converted log of ``name``, sorted by user, time, item."""
    src = SOURCES[name]
    lines = data_lines(name, files, verify)
    if name == "ml-100k":
        df = movielens(lines[0], "\t", src.shift_days)
    elif name == "ml-latest-small":
        df = movielens(lines[0], ",", src.shift_days)
    else:
        df = lastfm(*lines)
    if df["timestamp"].min() < LOADER_MIN_TS:
        raise ValueError(f"{name}: a timestamp before 2000-01-01 after the shift")
    return df.sort("user_id", "timestamp", "video_id")


def describe(df) -> str:  # noqa: ANN001
    """One paragraph of figures (rows, users, items, density, span, positive rates)."""
    import polars as pl

    n_u, n_i = df["user_id"].n_unique(), df["video_id"].n_unique()
    per_user = df.group_by("user_id").len()["len"]
    ts = df["timestamp"]
    days = (ts.max() - ts.min()) / DAY
    wr = df["watch_ratio"]
    return (
        f"{df.height:,} rows, {n_u:,} users, {n_i:,} items, density "
        f"{df.height / (n_u * n_i):.4f}; rows per user median {per_user.median():.0f} "
        f"(min {per_user.min()}, max {per_user.max()}); span {days:,.0f} days "
        f"({pl.from_epoch(pl.Series([ts.min(), ts.max()]), 's').dt.date().to_list()}); "
        f"wr>2 {float((wr > 2).mean()):.1%}, wr>=1 {float((wr >= 1).mean()):.1%}, "
        f"distinct timestamps {ts.n_unique():,}"
    )


def write_atomic(df, path: Path) -> None:  # noqa: ANN001
    """Write the CSV under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.write_csv(tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=[*SOURCES, "all"])
    ap.add_argument("--mirror", type=Path, help="folder of owner+name/repo git snapshots")
    ap.add_argument("--raw", type=Path, help="a downloaded raw file (lastfm-2k: its folder)")
    ap.add_argument("--out", type=Path, default=Path("/work/devdata"))
    ap.add_argument("--no-verify", action="store_true", help="skip the pinned-MD5 check")
    args = ap.parse_args()
    names = list(SOURCES) if args.name == "all" else [args.name]
    if args.raw is not None and len(names) > 1:
        sys.exit("--raw names one data set's file: give a data set's name, not 'all'")
    for name in names:
        df = convert(name, read_raw(name, args.mirror, args.raw), not args.no_verify)
        path = args.out / name / "interactions.csv"
        write_atomic(df, path)
        src = SOURCES[name]
        print(f"{name}: {path}\n  from {src.repo}@{src.commit[:10]}: {', '.join(src.paths)}")
        print(f"  {describe(df)}\n  licence: {src.licence}")


if __name__ == "__main__":
    main()
