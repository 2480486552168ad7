"""Training: loss goes down, checkpoints load, the transfer head uses cached features, runs are seeded."""

import json

import numpy as np
import pytest
import torch

from search.models.encoders import EncoderStore, ScratchNet, scratch_transform
from search.models.training import _train_val_sets, train_scratch, train_transfer
from search.models.trunks import OFFLINE_TRUNK
from tests.conftest import FAST_TRAIN


def test_scratch_training_lowers_loss_and_checkpoint_loads(dataset, tmp_path):
    out = tmp_path / "scratch.pt"
    res = train_scratch(dataset, out, 4, None, FAST_TRAIN, log=lambda s: None)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert out.is_file() and out.stat().st_size < 10 * 1024 * 1024
    enc = EncoderStore(tmp_path).load("scratch")
    assert enc.classes == sorted(p.name for p in (dataset / "train").iterdir())
    # The reported accuracy is the saved checkpoint's accuracy on the held-out validation photos, recomputed here.
    ckpt = torch.load(out, weights_only=True)
    assert res.val_acc == round(ckpt["val_acc"], 4) and res.best_epoch == ckpt["epoch"]
    assert json.loads(res.json())["val_acc"] == res.val_acc
    _, _, val_set = _train_val_sets(dataset, FAST_TRAIN, scratch_transform(), scratch_transform())
    x = torch.stack([val_set[i]["image"] for i in range(len(val_set))])
    y = torch.tensor([val_set[i]["target"] for i in range(len(val_set))])
    net = ScratchNet(len(enc.classes))
    net.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        acc = (net.eval()(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(res.val_acc, abs=1e-4)


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


def test_interrupted_training_resumes_to_the_same_result_as_an_uninterrupted_run(dataset, tmp_path):
    """Stop a 3-epoch run after epoch 1 is saved, resume it: weights, optimizer, scheduler and epochs equal a
    seeded run that was never interrupted."""
    store = EncoderStore(tmp_path)

    def stop_at_epoch_2(line: str) -> None:
        if line.startswith("epoch   2/3"):
            raise KeyboardInterrupt  # as Ctrl-C during epoch 2, after epoch 1's state was saved

    with pytest.raises(KeyboardInterrupt):
        train_transfer(dataset, tmp_path / "a" / "head.pt", 3, store, FAST_TRAIN, trunk=OFFLINE_TRUNK,
                       log=stop_at_epoch_2)
    assert torch.load(tmp_path / "a" / "head.pt.state", weights_only=True)["epoch"] == 1
    logs = []
    resumed = train_transfer(dataset, tmp_path / "a" / "head.pt", 3, store, FAST_TRAIN, trunk=OFFLINE_TRUNK,
                             log=logs.append)
    assert any("resuming transfer from epoch 1/3" in line for line in logs)
    straight = train_transfer(dataset, tmp_path / "b" / "head.pt", 3, store, FAST_TRAIN, trunk=OFFLINE_TRUNK,
                              log=lambda s: None)
    assert resumed.history == straight.history and len(resumed.history) == 3
    a = torch.load(tmp_path / "a" / "head.pt.state", weights_only=True)
    b = torch.load(tmp_path / "b" / "head.pt.state", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3 and a["best_epoch"] == b["best_epoch"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert a["scheduler"] == b["scheduler"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i][k], sb[i][k]) for i in sb for k in sb[i])


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
    empty = tra.encode([])
    assert empty.shape == (0, 256) and empty.dtype == np.float32
