"""A tiny hand-made KuaiRec folder whose every figure can be computed by hand.

Raw ids: users 3, 7, 10 in big_matrix and 7, 10, 12 in small_matrix (12 is a cold test
user); videos 100, 200, 300, 400 in big and 200, 300, 500 in small (500 is cold). So
``users.raw == [3, 7, 10, 12]`` and ``items.raw == [100, 200, 300, 400, 500]``.

big_matrix.csv has 9 rows, 3 of them exact duplicates (lines 3, 8 and 10 repeat lines 2,
2 and 9); (3, 100) is also viewed twice with different values (lines 2 and 4).
"""

from __future__ import annotations

from pathlib import Path

from kuairec.data import schema

MATRIX_HEADER = ",".join(schema.BIG.header)

BIG_ROWS = [
    "3,100,1000,2000,2020-07-05 00:08:23.438,20200705,1593878903.438,0.5",
    "3,100,1000,2000,2020-07-05 00:08:23.438,20200705,1593878903.438,0.5",
    "3,100,3000,2000,2020-07-06 00:08:23.000,20200706,1593965303.0,1.5",
    "3,200,5000,1000,2020-07-05 00:26:40.000,20200705,1593880000.0,5.0",
    "7,300,2500,2500,2020-07-07 00:00:00.000,20200707,1594051200.0,1.0",
    "7,100,4000,2000,2020-07-08 00:00:00.000,20200708,1594137600.0,2.0",
    "3,100,1000,2000,2020-07-05 00:08:23.438,20200705,1593878903.438,0.5",
    "10,400,900,3000,2020-07-09 00:00:00.000,20200709,1594224000.0,0.3",
    "10,400,900,3000,2020-07-09 00:00:00.000,20200709,1594224000.0,0.3",
]
SMALL_ROWS = [
    "7,200,1100,1100,2020-07-10 00:00:00.000,20200710.0,1594310400.0,1.0",
    "7,300,3000,2500,,,,1.2",
    "10,200,3000,1200,2020-07-11 00:00:00.000,20200711.0,1594396800.0,2.5",
    "12,500,500,4000,2020-07-12 00:00:00.000,20200712.0,1594483200.0,0.125",
]
TRUTH_ROWS = ["7,200,0.9", "7,300,1.1", "10,200,2.0", "12,500,0.2"]

ITEM_CATEGORIES = """video_id,feat
100,[8]
200,"[27, 9]"
300,[]
400,"[0, 30, 30]"
999,[1]
"""

SOCIAL = """user_id,friend_list
3,"[7, 10]"
7,[3]
10,"[12, 555]"
444,[3]
"""

CAPTIONS = (
    ",".join(schema.CAPTION_CATEGORY.header)
    + "\n"
    + '100,UNKNOWN,"好吃, ""真的""\n第二行","[美食,搞笑]",8,美食,673,美食教程,-124,UNKNOWN\n'
    + "200,封面,普通标题,[],-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN\n"
    + "abc,x,y,[],1,a,2,b,3,c\n"
    + "777,x,y,[],1,a,2,b,3,c\n"
    + '300,,,"[旅行]",5,旅游,6,城市,7,夜景\n'
)


def user_features_row(user_id: int, nan_tail: bool = False) -> str:
    head = [str(user_id), "high_active", "0", "0", "1", "5", '"(0,10]"', "12", '"[10,100)"']
    head += ["1", '"[1,5)"', "107", "61-90"]
    onehots = [str(k % 3) for k in range(12)]
    tail = [""] * 6 if nan_tail else ["1.0", "0.0", "0.0", "1.0", "0.0", "0.0"]
    return ",".join(head + onehots + tail)


USER_FEATURES = (
    ",".join(schema.USER_FEATURES.header)
    + "\n"
    + "\n".join([user_features_row(3), user_features_row(7, nan_tail=True), user_features_row(99)])
    + "\n"
)

_DAILY_TEXT = {
    "video_type": "NORMAL",
    "upload_dt": "2020-07-01",
    "upload_type": "ShortImport",
    "visible_status": "public",
    "video_tag_name": "美食",
}


def item_daily_row(video_id: int, date: int, **values: float | int | str) -> str:
    """A row of item_daily_features.csv: 1 in every count unless given."""
    base: dict[str, object] = {"video_id": video_id, "date": date, "author_id": 55}
    base.update(video_duration=2000.0, video_width=720, video_height=1280, music_id=9)
    base.update(video_tag_id=3, play_progress=0.5)
    out = []
    for col in schema.ITEM_DAILY_FEATURES.columns:
        if col.name in values:
            out.append(str(values[col.name]))
        elif col.name in base:
            out.append(str(base[col.name]))
        elif col.name in _DAILY_TEXT:
            out.append(_DAILY_TEXT[col.name])
        else:
            out.append("1")
    return ",".join(out)


NAN_COLLECT = {c: "" for c in schema.COLLECT_COLUMNS}
ITEM_DAILY = (
    ",".join(schema.ITEM_DAILY_FEATURES.header)
    + "\n"
    + "\n".join(
        [
            item_daily_row(
                100,
                20200705,
                play_cnt=10,
                complete_play_cnt=4,
                show_cnt=20,
                play_progress=0.4,
                author_id=55,
                **NAN_COLLECT,
            ),
            item_daily_row(
                100,
                20200706,
                play_cnt=30,
                complete_play_cnt=6,
                show_cnt=50,
                play_progress=0.8,
                author_id=56,
                collect_cnt=2,
            ),
            item_daily_row(200, 20200705, play_cnt=0, complete_play_cnt=0, show_cnt=5),
            item_daily_row(888, 20200705, play_cnt=3),
        ]
    )  # fmt: skip
    + "\n"
)


def write_tiny_folder(
    folder: Path,
    *,
    skip: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    truth: bool = True,
) -> Path:
    """Write the tiny folder; ``skip`` names files left out, ``replace`` file texts."""
    files = {
        "big_matrix.csv": MATRIX_HEADER + "\n" + "\n".join(BIG_ROWS) + "\n",
        "small_matrix.csv": MATRIX_HEADER + "\n" + "\n".join(SMALL_ROWS) + "\n",
        "item_categories.csv": ITEM_CATEGORIES,
        "user_features.csv": USER_FEATURES,
        "item_daily_features.csv": ITEM_DAILY,
        "social_network.csv": SOCIAL,
        "kuairec_caption_category.csv": CAPTIONS,
    }
    if truth:
        header = ",".join(schema.TRUTH.header)
        files["small_matrix_truth.csv"] = header + "\n" + "\n".join(TRUTH_ROWS) + "\n"
    files.update(replace or {})
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if name not in skip:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def big_text(rows: list[str]) -> str:
    return MATRIX_HEADER + "\n" + "\n".join(rows) + "\n"


def cache_entries(cache: Path) -> list[str]:
    """Every name under ``<cache>/datasets`` (entries and temporary folders)."""
    d = cache / "datasets"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


#: Headless Chromium on this closed-network machine: without the background-networking
#: flags it keeps trying (and failing) to reach Google's hosts. Shared by every browser test.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
