"""Training: loss goes down, checkpoints load, the transfer head uses cached features, runs are seeded."""

import json

import numpy as np
import torch

from search.encoders import EncoderStore
from search.training import train_scratch, train_transfer
from search.trunks import OFFLINE_TRUNK
from tests.conftest import FAST_TRAIN


def test_scratch_training_lowers_loss_and_checkpoint_loads(dataset, tmp_path):
    out = tmp_path / "scratch.pt"
    res = train_scratch(dataset, out, 4, None, FAST_TRAIN, log=lambda s: None)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert out.is_file() and out.stat().st_size < 10 * 1024 * 1024
    enc = EncoderStore(tmp_path).load("scratch")
    assert enc.classes == sorted(p.name for p in (dataset / "train").iterdir())
    assert 0.0 <= res.val_acc <= 1.0 and json.loads(res.json())["val_acc"] == res.val_acc


def test_scratch_training_is_seeded(dataset, tmp_path):
    a = train_scratch(dataset, tmp_path / "a" / "scratch.pt", 1, None, FAST_TRAIN, log=lambda s: None)
    b = train_scratch(dataset, tmp_path / "b" / "scratch.pt", 1, None, FAST_TRAIN, log=lambda s: None)
    assert a.history == b.history
    sa = torch.load(tmp_path / "a" / "scratch.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "scratch.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_resumes_from_saved_state(dataset, tmp_path):
    out = tmp_path / "scratch.pt"
    train_scratch(dataset, out, 2, None, FAST_TRAIN, log=lambda s: None)
    logs = []
    res = train_scratch(dataset, out, 2, None, FAST_TRAIN, log=logs.append)
    assert any("resuming" in line for line in logs) and len(res.history) == 2


def test_transfer_head_trains_on_cached_features_and_shares_trunk(dataset, tmp_path):
    store = EncoderStore(tmp_path)
    logs = []
    res = train_transfer(dataset, tmp_path / "transfer_head.pt", 8, store, FAST_TRAIN, trunk=OFFLINE_TRUNK,
                         log=logs.append)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.val_acc >= 0.9  # the classes are trivially separable for an ImageNet trunk
    assert list((tmp_path / "cache").glob("trunk-features-*.pt"))
    head_bytes = (tmp_path / "transfer_head.pt").stat().st_size
    assert head_bytes < 3 * 1024 * 1024  # only the head is saved, never the trunk
    logs.clear()
    train_transfer(dataset, tmp_path / "again.pt", 1, store, FAST_TRAIN, trunk=OFFLINE_TRUNK, log=logs.append)
    assert any("cached trunk features" in line for line in logs)
    pre = store.load("pretrained", trunk=OFFLINE_TRUNK)
    tra = store.load("transfer", trunk=OFFLINE_TRUNK)
    assert tra.trunk is pre.trunk is store.trunk(OFFLINE_TRUNK)
    ckpt = torch.load(tmp_path / "transfer_head.pt", weights_only=True)
    assert ckpt["trunk"] == OFFLINE_TRUNK and not any(k.startswith("net.") for k in ckpt["state_dict"])
    assert np.isfinite(tra.encode([]).sum())
