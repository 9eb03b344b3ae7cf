"""The distributed path: the autoencoder trained by two CPU processes (Lightning DDP on
gloo over loopback, ``ddp_spawn``) gives a valid saved model (save, load, recommend).

``ddp_spawn`` starts fresh processes and pickles the trainer into them; plain ``ddp``
would relaunch the test runner itself, so the trainer never uses it.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("lightning")

from kuairec.data.dataset import IdMap, Interactions, TrainSet  # noqa: E402
from kuairec.evaluation.validation import validation_split  # noqa: E402
from kuairec.models import Recommender, create_model  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(n_users: int = 64, n_items: int = 24) -> TrainSet:
    rng = np.random.default_rng(5)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    wr = rng.uniform(0.2, 3.0, users.size)
    inter = Interactions.from_log(users, items, wr, None, (n_users, n_items))
    return TrainSet(inter, IdMap(np.arange(n_users)), IdMap(np.arange(n_items)))


def test_two_process_ddp_gives_a_valid_saved_model(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    train = _train()
    fit_part, valid = validation_split(train, "random", fraction=0.25, seed=0)
    settings = {"hidden_dims": [8], "max_epochs": 1, "batch_size": 8, "num_threads": 1}
    model = create_model("autoencoder", {**settings, "accelerator": "cpu", "devices": 2})
    model.scratch_dir = tmp_path / "scratch"
    model.fit(fit_part, valid)
    assert model.history_["epoch"] == [0.0] and len(model.history_["valid_ndcg@10"]) == 1
    assert model.best_epoch_ == 0
    assert list((tmp_path / "scratch").iterdir()) == []  # checkpoints and logs removed
    users = np.arange(train.n_users)
    # one process from the same seed gives other weights: in DDP each rank trained on its
    # half of the users and the gradients were averaged
    alone = create_model("autoencoder", settings).fit(fit_part, valid)
    assert not np.array_equal(alone.score(users), model.score(users))
    loaded = Recommender.load(model.save(tmp_path / "m"))
    items, scores = loaded.recommend(users, 5, exclude=fit_part.interactions.csr("ones"))
    want = model.recommend(users, 5, exclude=fit_part.interactions.csr("ones"))
    np.testing.assert_array_equal(items, want[0])
    np.testing.assert_array_equal(scores, want[1])
    assert (items >= 0).all() and np.isfinite(scores).all()
    assert loaded.config.devices == 2
