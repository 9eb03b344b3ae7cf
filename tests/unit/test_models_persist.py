"""Saving and loading models: the folder format, atomic writes and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kuairec.data.dataset import IdMap, Interactions, TrainSet
from kuairec.errors import ConfigError, ModelError
from kuairec.models import Recommender, create_model
from kuairec.models.implicit_mf import ALSRecommender


def _train() -> TrainSet:
    inter = Interactions.from_log([0, 0, 1, 2], [0, 1, 1, 2], [1.0, 2.0, 0.5, 3.0], None, (3, 4))
    return TrainSet(inter, IdMap(np.array([5, 6, 7])), IdMap(np.array([10, 20, 30, 40])))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return create_model("popularity").fit(_train()).save(tmp_path / "pop")


def test_saved_folder_holds_json_and_npz(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.npz"]
    meta = json.loads((saved / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["name"] == "popularity"
    assert meta["config"] == {} and meta["n_users"] == 3 and meta["n_items"] == 4
    assert meta["fingerprint"] == _train().fingerprint()
    assert meta["trained_on"] == "3 users x 4 items, 4 user-item pairs"
    assert "kuairec_version" in meta
    with np.load(saved / "weights.npz", allow_pickle=False) as npz:
        assert npz["popularity"].tolist() == [1.0, 2.0, 1.0, 0.0]
    assert [p.name for p in saved.parent.iterdir()] == ["pop"]  # no temporary left


def test_save_refuses_non_empty_folder_unless_overwrite(saved: Path) -> None:
    model = create_model("popularity_weighted").fit(_train())
    with pytest.raises(ConfigError, match="not empty; pass overwrite=True"):
        model.save(saved)
    model.save(saved, overwrite=True, trained_on="test data")
    meta = json.loads((saved / "model.json").read_text())
    assert meta["name"] == "popularity_weighted" and meta["trained_on"] == "test data"
    assert [p.name for p in saved.parent.iterdir()] == ["pop"]


def test_failed_overwrite_keeps_the_old_model_and_modes_are_ordinary(
    saved: Path, monkeypatch
) -> None:
    import os
    import stat

    def full_disk(*args, **kwargs):
        raise OSError("disk full")

    model = create_model("popularity_weighted").fit(_train())
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="disk full"):
        model.save(saved, overwrite=True)
    monkeypatch.undo()
    assert json.loads((saved / "model.json").read_text())["name"] == "popularity"
    assert [p.name for p in saved.parent.iterdir()] == ["pop"]
    old = os.umask(0o022)
    try:
        model.save(saved, overwrite=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o755  # readable beside the run's files


def test_save_into_an_empty_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    create_model("random").fit(_train()).save(tmp_path / "empty")
    assert (tmp_path / "empty" / "weights.npz").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        create_model("random").fit(_train()).save(tmp_path / "file")


def _edit_meta(path: Path, **changes) -> None:
    meta = json.loads((path / "model.json").read_text())
    meta.update(changes)
    (path / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"name": "no_such_model"}, "unknown model 'no_such_model'"),
        ({"config": {"bogus": 1}}, "saved config is invalid.*'bogus'"),
    ],
)
def test_load_refuses_bad_metadata(saved: Path, change: dict, message: str) -> None:
    _edit_meta(saved, **change)
    with pytest.raises(ModelError, match=message):
        Recommender.load(saved)


def test_load_refuses_missing_or_broken_files(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="folder does not exist"):
        Recommender.load(tmp_path / "absent")
    (saved / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot be read"):
        Recommender.load(saved)
    np.savez(saved / "weights.npz", other=np.zeros(2))
    with pytest.raises(ModelError, match="has no array 'popularity'"):
        Recommender.load(saved)
    np.savez(saved / "weights.npz", popularity=np.array([object()], dtype=object))
    with pytest.raises(ModelError, match="cannot be read"):
        Recommender.load(saved)
    (saved / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Recommender.load(saved)
    (saved / "model.json").unlink()
    with pytest.raises(ModelError, match="missing model.json"):
        Recommender.load(saved)


def test_load_checks_fingerprint_and_class(saved: Path) -> None:
    other = TrainSet(_train().interactions, IdMap(np.array([1, 2, 3])), _train().items)
    with pytest.raises(ModelError, match=r"trained on another dataset \(different id maps\)"):
        Recommender.load(saved, expected_fingerprint=other.fingerprint())
    loaded = Recommender.load(saved, expected_fingerprint=_train().fingerprint())
    assert loaded.score(np.array([0])).tolist() == [[1.0, 2.0, 1.0, 0.0]]
    with pytest.raises(ModelError, match="holds a 'popularity' model, not a 'als' model"):
        ALSRecommender.load(saved)
