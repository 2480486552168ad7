"""Indexes: round trip, refusal of corruption and mismatches, atomic rebuilds, retrieval of perturbed copies."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from search import index as index_mod
from search.errors import BadIndexError
from search.index import CHECKED_FILES, load_index, read_manifest
from search.indexing import writer as writer_mod
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from search.serving.engine import SearchEngine
from tests.conftest import IN_PROCESS


def _copy(built, tmp_path):
    dst = tmp_path / "idx"
    shutil.copytree(built, dst)
    return dst


def test_index_round_trips(built, dataset, trained):
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)
    idx = load_index(built / "pretrained", enc)
    n_files = sum(1 for _ in dataset.rglob("*.jpg"))
    assert idx.embeddings.shape == (n_files, 1280) and idx.coords.shape == (n_files, 2)
    np.testing.assert_allclose(idx.embeddings, enc.encode([Image.open(dataset / it["path"]).convert("RGB")
                                                           for it in idx.items]), atol=1e-4)
    m = idx.manifest
    assert m["encoder"] == "pretrained" and m["trunk"] == OFFLINE_TRUNK and m["count"] == n_files
    assert m["classes"] == ["Red Stripes", "Blue Circles", "Green Checks"]
    assert {it["split"] for it in idx.items} == {"train", "test"}
    assert all(idx.thumbnail_path(i).is_file() for i in range(len(idx.items)))
    assert max(Image.open(idx.thumbnail_path(0)).size) <= 256


@pytest.mark.parametrize("name", [*CHECKED_FILES, "manifest.json"])
@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_flipped_byte_in_any_index_file_is_refused(built, tmp_path, trained, name, where):
    idx_root = _copy(built, tmp_path)
    f = idx_root / "scratch" / name
    data = bytearray(f.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BadIndexError, match="corrupt"):
        load_index(idx_root / "scratch", EncoderStore(trained).load("scratch"))


def test_corrupt_manifest_is_refused(built, tmp_path):
    idx_root = _copy(built, tmp_path)
    (idx_root / "scratch" / "manifest.json").write_text("{not json")
    with pytest.raises(BadIndexError, match="corrupt"):
        load_index(idx_root / "scratch")


def test_wrong_checkpoint_hash_is_refused(built, tmp_path, trained, dataset):
    import dataclasses

    from search.models.training import train_scratch
    from tests.conftest import FAST_TRAIN

    other = tmp_path / "ckpt"
    train_scratch(dataset, other / "scratch.pt", 1, None, dataclasses.replace(FAST_TRAIN, seed=7), log=lambda s: None)
    with pytest.raises(BadIndexError, match="weights"):
        load_index(built / "scratch", EncoderStore(other).load("scratch"))


def test_wrong_dimension_is_refused(built, tmp_path, trained):
    idx_root = _copy(built, tmp_path)
    m = json.loads((idx_root / "pretrained" / "manifest.json").read_text())
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)
    np.save(idx_root / "pretrained" / "embeddings.npy", np.zeros((m["count"], 64), np.float32))
    m["files"]["embeddings.npy"] = index_mod.sha256_file(idx_root / "pretrained" / "embeddings.npy")
    m["dim"] = 64
    m["checksum"] = index_mod.manifest_checksum(m)
    (idx_root / "pretrained" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BadIndexError, match="64-d"):
        load_index(idx_root / "pretrained", enc)


def test_index_of_one_trunk_refused_for_the_other(built, trained, vgg_weights):
    enc = EncoderStore(trained, weights=vgg_weights).load("pretrained", trunk="vgg16")
    with pytest.raises(BadIndexError, match="trunk"):
        load_index(built / "pretrained", enc)


def test_tools_take_the_trunk_from_the_manifest(built, trained):
    engine = SearchEngine(built, trained)
    assert set(engine.backends) == {"scratch", "pretrained", "transfer"}, engine.unavailable
    assert engine.backends["pretrained"].encoder.trunk is engine.backends["transfer"].encoder.trunk
    assert read_manifest(built / "transfer")["trunk"] == OFFLINE_TRUNK


def test_interrupted_build_leaves_old_index_intact(built, tmp_path, trained, dataset, monkeypatch):
    idx_root = _copy(built, tmp_path)
    before = (idx_root / "pretrained" / "embeddings.npy").read_bytes()
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_mod, "write_json", killed)  # dies after the arrays, before the manifest
    with pytest.raises(KeyboardInterrupt):
        build_index(enc, dataset, "train", idx_root, IN_PROCESS)
    assert (idx_root / "pretrained" / "embeddings.npy").read_bytes() == before
    assert load_index(idx_root / "pretrained", enc).manifest["split"] == "all"
    assert not list(idx_root.glob(".pretrained.new-*"))


def test_rebuild_replaces_index_and_recovers_half_swapped_state(built, tmp_path, trained, dataset):
    idx_root = _copy(built, tmp_path)
    enc = EncoderStore(trained).load("scratch")
    new = build_index(enc, dataset, "train", idx_root, IN_PROCESS)
    assert new.manifest["split"] == "train" and all(it["split"] == "train" for it in new.items)
    # A swap killed between its two renames leaves only .scratch.old: loading puts it back.
    (idx_root / "scratch").rename(idx_root / ".scratch.old")
    assert load_index(idx_root / "scratch", enc).manifest["split"] == "train"


def _perturb(img: Image.Image, how: str) -> Image.Image:
    w, h = img.size
    if how == "crop":
        return img.crop((w // 16, h // 16, w - w // 16, h - h // 16))  # ~12% of the area gone
    if how == "brightness":
        return ImageEnhance.Brightness(img).enhance(1.3)
    return img.filter(ImageFilter.GaussianBlur(0.8))


@pytest.mark.parametrize("how", ["crop", "brightness", "blur"])
def test_perturbed_copy_finds_original_at_rank_1(built, trained, dataset, how):
    engine = SearchEngine(built, trained, names=("pretrained",))
    idx = engine.backends["pretrained"].index
    rank1, top3 = [], []
    for row in range(len(idx.items)):
        original = Image.open(dataset / idx.items[row]["path"]).convert("RGB")
        hits = engine.search("pretrained", _perturb(original, how), 3)
        rank1.append(hits[0].row == row)
        top3.append(row in [h.row for h in hits])
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].distance <= hits[1].distance <= hits[2].distance
    # Synthetic pictures within a class look much alike; real photos differ far more.
    assert np.mean(rank1) >= 0.9 and all(top3)


def test_stale_temp_files_are_cleaned_by_the_next_build(tmp_path, trained, dataset):
    import os
    import time

    thumbs = tmp_path / "idx" / "thumbnails"
    thumbs.mkdir(parents=True)
    stale, fresh = thumbs / ".a.jpg.x1.tmp", thumbs / ".b.jpg.x2.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    build_index(EncoderStore(trained).load("scratch"), dataset, "test", tmp_path / "idx", IN_PROCESS)
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a build still running


def test_embed_many_runs_the_shared_trunk_once_and_matches_each_encoder(built, trained):
    engine = SearchEngine(built, trained)
    image = Image.new("RGB", (120, 90), (30, 90, 200))
    trunk = engine.backends["pretrained"].encoder.trunk
    calls = []
    handle = trunk.register_forward_hook(lambda *a: calls.append(1))
    try:
        vectors = engine.embed_many(["scratch", "pretrained", "transfer"], image)
    finally:
        handle.remove()
    assert len(calls) == 1
    for name, vec in vectors.items():
        np.testing.assert_allclose(vec, engine.embed(name, image), atol=1e-5)


def test_building_several_indexes_runs_a_shared_trunk_once_and_matches_separate_builds(built, trained, dataset,
                                                                                         tmp_path):
    """pretrained and transfer share the trunk: one pass over the photos serves both, and the indexes equal the
    ones built one at a time."""
    from search.indexing.runner import build_indexes

    store = EncoderStore(trained)
    encs = [store.load(n, trunk=OFFLINE_TRUNK) for n in ("scratch", "pretrained", "transfer")]
    trunk = encs[1].trunk
    assert encs[2].trunk is trunk
    seen = []
    hook = trunk.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    try:
        together = build_indexes(encs, dataset, "train", tmp_path / "together", IN_PROCESS)
    finally:
        hook.remove()
    assert sum(seen) == 24  # the 24 train photos went through the trunk once, not twice
    for enc in encs:
        alone = build_index(enc, dataset, "train", tmp_path / "alone", IN_PROCESS)
        np.testing.assert_allclose(together[enc.name].embeddings, alone.embeddings, atol=1e-5)
        assert [i["path"] for i in together[enc.name].items] == [i["path"] for i in alone.items]
