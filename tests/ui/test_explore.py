"""Exploring: search from a gallery photo, calibrated match confidence, JSON hits, heatmaps, MCP tools."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image, ImageFilter

from tests.conftest import synthetic_image


def _perturbed_copy(src, dst):
    """A gallery photo cropped by 2 px, brightened and re-encoded: not the same bytes, the same scene."""
    img = Image.open(src).convert("RGB")
    img = img.crop((2, 2, img.width - 2, img.height - 2)).filter(ImageFilter.SMOOTH)
    arr = np.clip(np.asarray(img, np.int16) + 8, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(dst, quality=85)
    return dst


def _search_json(client, image, encoder, k):
    return json.loads(client.predict(handle_file(str(image)), encoder, k, api_name="/search_json"))


@pytest.mark.parametrize("encoder", ["scratch", "pretrained", "transfer"])
def test_similar_to_searches_from_the_stored_vector_and_returns_the_photo_first(client, encoder):
    path = "train/02.Green_Checks/02_train_5.jpg"
    gallery, the_map, verdict = client.predict(encoder, path, 6, api_name="/similar_to")
    assert len(gallery) == 6 and gallery[0]["caption"].startswith("#1 · Green Checks")
    star = the_map["traces"][1]
    assert star["name"] == "query photo" and star["customdata"] == [the_map["traces"][0]["customdata"][0]]
    assert "Green Checks" in verdict


def test_similar_to_matches_a_search_with_the_same_photo(client, dataset):
    path = "train/01.Blue_Circles/01_train_3.jpg"
    by_vector, _, _ = client.predict("pretrained", path, 8, api_name="/similar_to")
    by_upload, _, _ = client.predict(handle_file(str(dataset / path)), "pretrained", 8, api_name="/search")
    assert [g["caption"] for g in by_vector] == [g["caption"] for g in by_upload]


def test_similar_to_unknown_path_is_a_clear_error(client):
    with pytest.raises(Exception, match="is not a photo of the pretrained gallery"):
        client.predict("pretrained", "train/../../etc/passwd", 3, api_name="/similar_to")


def test_search_json_confidence_is_a_probability_per_hit(client, photo_of):
    # (not monotone in distance since the open-set confidence: a farther hit of the landmark most of the top 10
    # agree on can be likelier than a nearer hit of another landmark; tests/evaluation/test_open_set.py tests
    # its meaning)
    for encoder in ("scratch", "pretrained", "transfer"):
        out = _search_json(client, photo_of(1), encoder, 20)
        p = [h["p_same"] for h in out["hits"]]
        d = [h["distance"] for h in out["hits"]]
        assert all(0.0 <= x <= 1.0 for x in p) and d == sorted(d)
        assert set(out["hits"][0]) == {"rank", "path", "class_name", "distance", "p_same"}


@pytest.mark.parametrize("encoder", ["pretrained", "transfer"])
def test_perturbed_gallery_photo_comes_back_first_and_confident(client, dataset, tmp_path, encoder):
    path = "train/00.Red_Stripes/00_train_6.jpg"
    copy = _perturbed_copy(dataset / path, tmp_path / "copy.jpg")
    out = _search_json(client, copy, encoder, 5)
    assert out["hits"][0]["path"] == path
    assert out["hits"][0]["p_same"] >= 0.5 and out["confident"] is True


def test_random_noise_is_not_a_confident_match(client, tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)).save(noise)
    out = _search_json(client, noise, "pretrained", 5)
    assert out["confident"] is False and out["hits"][0]["p_same"] < 0.5
    _, _, verdict = client.predict(handle_file(str(noise)), "pretrained", 5, api_name="/search")
    assert "does not seem to be in the gallery" in verdict


def test_explain_returns_two_overlays_of_the_photos_sizes_that_depend_on_the_hit(client, dataset, tmp_path):
    query = tmp_path / "query.jpg"
    synthetic_image(1, np.random.default_rng(5), size=(200, 150)).save(query)
    same = "train/01.Blue_Circles/01_train_1.jpg"
    other = "train/00.Red_Stripes/00_train_2.jpg"
    for encoder in ("scratch", "transfer"):
        q1, h1 = client.predict(handle_file(str(query)), encoder, same, api_name="/explain")
        q2, h2 = client.predict(handle_file(str(query)), encoder, other, api_name="/explain")
        assert Image.open(q1).size == (200, 150)
        assert Image.open(h1).size == Image.open(dataset / same).size  # thumbnails of 128x96 photos keep their size
        q3, _ = client.predict(handle_file(str(query)), encoder, same, api_name="/explain")
        a1, a2, a3 = (np.asarray(Image.open(q).convert("RGB"), np.float32) for q in (q1, q2, q3))
        assert np.abs(a1 - a3).mean() == 0  # the same pair gives the same heatmap ...
        assert np.abs(a1 - a2).mean() > 0.25  # ... and the query's depends on which hit it is compared with


def test_explain_unknown_path_is_a_clear_error(client, tmp_path):
    query = tmp_path / "q.jpg"
    synthetic_image(0, np.random.default_rng(2)).save(query)
    with pytest.raises(Exception, match="is not a photo of the scratch gallery"):
        client.predict(handle_file(str(query)), "scratch", "nope.jpg", api_name="/explain")


def test_mcp_server_lists_the_exploring_tools(server):
    with urllib.request.urlopen(server + "gradio_api/mcp/schema") as r:
        tools = {t["name"]: t for t in json.loads(r.read())}
    assert {"search", "search_json", "similar_to", "explain", "compare", "study"} <= set(tools)
    assert "Jaccard" in tools["study"]["description"] and not tools["study"]["inputSchema"].get("properties")
    assert "p_same" in tools["search_json"]["description"]
    assert set(tools["similar_to"]["inputSchema"]["properties"]) == {"encoder", "path", "top_k"}


@pytest.fixture()
def photo_of(tmp_path):
    def make(class_id: int):
        path = tmp_path / f"photo{class_id}.jpg"
        synthetic_image(class_id, np.random.default_rng(40 + class_id)).save(path)
        return path
    return make
