"""The server's catalogue names a video's tags by their tag ids, not matrix columns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec.data.dataset import IdMap, Interactions
from kuairec.serve.catalogue import build_catalogue


def test_tags_are_named_by_tag_id_not_by_column() -> None:
    # two tag columns whose tag ids are 40 and 5 (ids outside 0..30, in another order)
    tags = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    tags.tag_ids = np.array([40, 5])
    daily = pl.DataFrame(
        {"video_tag_id": [5, 40, 0, 1], "video_tag_name": ["five", "forty", "zero", "one"]}
    )
    dataset = SimpleNamespace(item_tags=tags, item_daily=daily, captions=None)
    inter = Interactions.from_log([0, 0], [0, 2], [1.0, 2.0], None, (1, 3))
    train = SimpleNamespace(
        n_items=3, interactions=inter, users=IdMap(np.array([7])), items=IdMap(np.arange(3)),
        video_duration=None,
    )  # fmt: skip
    cat = build_catalogue(dataset, train)
    assert cat.video(0)["tags"] == ["forty"]  # column 0 is tag 40, not tag 0 ("zero")
    assert cat.video(1)["tags"] == ["five"]
    assert sorted(cat.video(2)["tags"]) == ["five", "forty"]
