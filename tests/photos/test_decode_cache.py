"""Decode once: the training photos' cache, training from it, and early stopping."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from search.indexing.encode_stage import Vectors
from search.models.training import Batches, Target, fit, train_scratch
from search.photos import decode_cache as decoded
from search.photos.decode_cache import DecodeCache, Prep, entries, small_photo
from search.photos.images import open_image
from search.storage import tensor_sha256
from tests.conftest import FAST_TRAIN, IN_PROCESS, ROOT, synthetic_image


@pytest.fixture()
def photos(tmp_path):
    paths = []
    for i in range(6):
        paths.append(tmp_path / "photos" / f"{i}.jpg")
        paths[-1].parent.mkdir(exist_ok=True)
        synthetic_image(i % 3, np.random.default_rng(i), size=(300 + 40 * i, 200)).save(paths[-1])
    return paths


def _decodes(monkeypatch) -> list[str]:
    """Every photo file the cache decodes, by name (workers=0: in this process)."""
    seen: list[str] = []
    real = decoded.open_image

    def counting(source):
        seen.append(os.path.basename(str(source)))
        return real(source)

    monkeypatch.setattr(decoded, "open_image", counting)
    return seen


def test_a_second_run_decodes_no_photo_and_gets_the_same_pixels(photos, tmp_path, monkeypatch):
    seen = _decodes(monkeypatch)
    cache = DecodeCache(tmp_path / "cache")
    first = cache.load(photos, workers=0)
    assert sorted(seen) == sorted(p.name for p in photos)
    for t, p in zip(first, photos):
        assert t.dtype == torch.uint8 and min(t.shape[1:]) == Prep().short_side
        assert torch.equal(t, small_photo(open_image(p)))  # what an uncached read gives
    seen.clear()
    again = DecodeCache(tmp_path / "cache").load(photos, workers=0)
    assert seen == [] and all(torch.equal(a, b) for a, b in zip(first, again))


def test_a_changed_photo_or_preprocessing_invalidates_exactly_what_it_must(photos, tmp_path, monkeypatch):
    seen = _decodes(monkeypatch)
    DecodeCache(tmp_path / "cache").load(photos, workers=0)
    seen.clear()
    synthetic_image(2, np.random.default_rng(99), size=(500, 300)).save(photos[1])  # another picture, same name
    after = DecodeCache(tmp_path / "cache").load(photos, workers=0)
    assert seen == [photos[1].name]
    assert torch.equal(after[1], small_photo(open_image(photos[1])))
    seen.clear()
    other = DecodeCache(tmp_path / "cache", Prep(short_side=100)).load(photos, workers=0)
    assert sorted(seen) == sorted(p.name for p in photos) and all(min(t.shape[1:]) == 100 for t in other)


def test_a_corrupt_entry_is_refused_and_rebuilt(photos, tmp_path, monkeypatch):
    seen = _decodes(monkeypatch)
    cache = DecodeCache(tmp_path / "cache")
    good = cache.load(photos, workers=0)
    files = entries(tmp_path / "cache")
    assert len(files) == len(photos)
    entry = torch.load(files[0], weights_only=True)
    entry["image"][0, 0, :8] ^= 0xFF  # pixels changed behind the checksum's back
    torch.save(entry, files[0])
    files[1].write_bytes(files[1].read_bytes()[:100])  # a truncated file
    seen.clear()
    again = cache.load(photos, workers=0)
    assert len(seen) == 2 and all(torch.equal(a, b) for a, b in zip(good, again))


def test_an_undecodable_photo_is_skipped_with_its_warning_and_remembered(photos, tmp_path, monkeypatch):
    bad = photos[0].parent / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    seen = _decodes(monkeypatch)
    with pytest.warns(UserWarning, match="bad.jpg"):
        got = DecodeCache(tmp_path / "cache").load([*photos, bad], workers=0)
    assert got[-1] is None and all(t is not None for t in got[:-1])
    seen.clear()
    with pytest.warns(UserWarning, match="bad.jpg"):
        DecodeCache(tmp_path / "cache").load([*photos, bad], workers=0)
    assert seen == []


KILLED_BUILD = r"""
import sys, time
from pathlib import Path
from search.photos import decode_cache as decoded
real = decoded.small_photo
def slow(img, prep=decoded.Prep()):
    time.sleep(0.15)
    return real(img, prep)
decoded.small_photo = slow
paths = [Path(p) for p in sys.argv[2:]]
decoded.DecodeCache(Path(sys.argv[1])).load(paths, workers=0)
"""


def test_a_killed_cache_build_leaves_no_half_written_entry(tmp_path):
    paths = []
    for i in range(40):
        paths.append(tmp_path / "photos" / f"{i}.jpg")
        paths[-1].parent.mkdir(exist_ok=True)
        synthetic_image(i % 3, np.random.default_rng(i), size=(320, 240)).save(paths[-1])
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD.format(root=str(ROOT)), str(cache),
                             *map(str, paths)])
    deadline = time.time() + 120
    while len(entries(cache)) < 5 and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    written = entries(cache)
    assert 5 <= len(written) < len(paths)
    for f in written:  # every entry there is whole: it loads and its checksum holds
        entry = torch.load(f, weights_only=True)
        assert tensor_sha256(entry["image"]) == entry["sha256"] and entry["image"].numel() > 0
    before = decoded.DECODES["count"]
    DecodeCache(cache).load(paths, workers=0)
    assert decoded.DECODES["count"] - before == len(paths) - len(written)  # only the rest is decoded


def test_training_from_the_cache_equals_training_from_the_photos(dataset, tmp_path):
    cached = train_scratch(dataset, tmp_path / "a" / "scratch.pt", 2, None, FAST_TRAIN, log=lambda s: None)
    assert entries(tmp_path / "a" / "cache" / "decoded")
    direct = train_scratch(dataset, tmp_path / "b" / "scratch.pt", 2, None,
                           dataclasses.replace(FAST_TRAIN, decode_once=False), log=lambda s: None)
    assert not (tmp_path / "b" / "cache").exists()
    a = torch.load(tmp_path / "a" / "scratch.pt.state", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "scratch.pt.state", weights_only=True)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in b)
    assert [h["val_acc"] for h in cached.history] == [h["val_acc"] for h in direct.history]


def test_validation_photos_are_transformed_once_not_in_every_epoch(dataset, tmp_path, monkeypatch):
    from search.models import training

    calls = []
    real = training.scratch_transform

    def counting():
        transform = real()

        def count(img):
            calls.append(1)
            return transform(img)
        return count

    monkeypatch.setattr(training, "scratch_transform", counting)
    cfg = dataclasses.replace(FAST_TRAIN, patience=None)
    per_run = []
    for epochs in (1, 3):
        calls.clear()
        result = train_scratch(dataset, tmp_path / f"{epochs}" / "scratch.pt", epochs, None, cfg, log=lambda s: None)
        assert result.epochs_run == epochs
        per_run.append(len(calls))
    assert per_run[0] > 0 and per_run[1] == per_run[0]  # once per validation photo, however many epochs


def _plateau_fit(out, epochs: int, patience: int, log=lambda s: None, lr: float = 0.0):
    """A tiny classifier on fixed data; with lr 0 nothing is learned, so validation accuracy plateaus at once."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    cfg = dataclasses.replace(FAST_TRAIN, lr=lr, patience=patience)
    batches = Batches(lambda e: DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                                           generator=torch.Generator().manual_seed(e)),
                      DataLoader(TensorDataset(x, y), batch_size=64))
    return fit(model, batches, epochs, Target(out, "toy", {"classes": ["a", "b", "c"]}), cfg, log=log)


def test_early_stopping_stops_patience_epochs_after_the_plateau_and_a_stopped_run_stays_stopped(tmp_path):
    logs = []
    res = _plateau_fit(tmp_path / "toy.pt", 12, 3, logs.append)
    assert res.best_epoch == 1 and res.epochs_run == 4 and len(res.history) == 4  # 1 + patience
    assert any("stopping early" in line for line in logs)
    again = _plateau_fit(tmp_path / "toy.pt", 12, 3)  # resumed: it had stopped, so it trains no more
    assert again.epochs_run == 4 and again.history == res.history
    full = _plateau_fit(tmp_path / "none.pt", 6, None)
    assert full.epochs_run == 6


def test_a_resumed_run_with_early_stopping_equals_an_uninterrupted_one(tmp_path):
    def stop_at_epoch_3(line: str) -> None:
        if line.startswith("epoch   3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _plateau_fit(tmp_path / "a.pt", 20, 4, stop_at_epoch_3, lr=0.05)
    resumed = _plateau_fit(tmp_path / "a.pt", 20, 4, lr=0.05)
    straight = _plateau_fit(tmp_path / "b.pt", 20, 4, lr=0.05)
    assert resumed.history == straight.history and resumed.best_epoch == straight.best_epoch
    a = torch.load(tmp_path / "a.pt.state", weights_only=True)
    b = torch.load(tmp_path / "b.pt.state", weights_only=True)
    assert a["epoch"] == b["epoch"] and a["stopped"] == b["stopped"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])


def test_index_builds_read_the_trunk_features_the_transfer_head_was_trained_on(dataset, trained, tmp_path):
    """The transfer head's training keeps each train photo's trunk features; the pretrained and transfer index
    builds then use them: the trunk does not run again, and the vectors equal those of a build that runs it."""
    from search.indexing.runner import build_indexes
    from search.models.encoders import EncoderStore
    from search.models.training import transfer_features
    from search.models.trunks import OFFLINE_TRUNK
    from search.photos.feature_cache import feature_cache_for

    store = EncoderStore(trained)
    encs = [store.load(n, trunk=OFFLINE_TRUNK) for n in ("scratch", "pretrained", "transfer")]
    trunk = encs[1].trunk
    transfer_features(dataset, tmp_path / "ckpt" / "cache", store, FAST_TRAIN, OFFLINE_TRUNK, log=lambda s: None)
    kept = feature_cache_for(tmp_path / "ckpt", trunk)
    plain = build_indexes(encs, dataset, "train", tmp_path / "plain", IN_PROCESS)
    calls = []
    real = type(trunk).forward
    type(trunk).forward = lambda self, x: (calls.append(len(x)), real(self, x))[1]
    try:
        reused = build_indexes(encs, dataset, "train", tmp_path / "reused", IN_PROCESS, vectors=Vectors(features=kept))
    finally:
        type(trunk).forward = real
    assert calls == []  # no trunk pass: scratch's own pass wrote the thumbnails, the features were kept
    for name in ("scratch", "pretrained", "transfer"):
        assert [it["path"] for it in reused[name].items] == [it["path"] for it in plain[name].items]
        assert np.allclose(reused[name].embeddings, plain[name].embeddings, atol=1e-4)
        assert [it["thumb"] for it in reused[name].items] == [it["thumb"] for it in plain[name].items]


def test_the_open_set_fold_models_train_from_the_same_cache(built, trained, dataset):
    """The fold models (trained without some landmarks) read the photos the full model decoded: one cache."""
    from search.evaluation.open_set import OPEN_SET_DIRNAME
    from search.photos.decode_cache import cache_dir_for

    assert list((trained / OPEN_SET_DIRNAME).glob("scratch-*.pt"))  # the `built` fixture trained them
    assert not (trained / OPEN_SET_DIRNAME / "cache").exists()
    train_photos = list((dataset / "train").rglob("*.jpg"))
    assert len(entries(cache_dir_for(trained))) == len(train_photos)
