"""The Gradio app through its API (gradio_client): search, compare, bad inputs, file serving."""

from __future__ import annotations

import io
import json
import re
import urllib.request

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from search.serving.engine import SearchEngine
from tests.conftest import synthetic_image


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "query.jpg"
    synthetic_image(1, np.random.default_rng(42)).save(path)
    return path


def _fetch_json(server: str, url: str):
    with urllib.request.urlopen(server + url) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("encoder", ["scratch", "pretrained", "transfer"])
def test_search_returns_k_captioned_items_and_map_with_query(client, server, photo, encoder):
    gallery, the_map, verdict = client.predict(handle_file(str(photo)), encoder, 5, api_name="/search")
    assert len(gallery) == 5
    captions = [g["caption"] for g in gallery]
    assert [c.split(" · ")[0] for c in captions] == ["#1", "#2", "#3", "#4", "#5"]
    assert all(c.endswith("% same landmark") for c in captions)
    # each caption shows its hit's match confidence, as search_json gives it (not monotone in rank: a farther hit
    # of the landmark most of the top 10 agree on can be likelier than a nearer one of another landmark)
    hits = json.loads(client.predict(handle_file(str(photo)), encoder, 5, api_name="/search_json"))["hits"]
    assert [c.split(" · ")[2] for c in captions] == [f"{h['p_same']:.0%} same landmark" for h in hits]
    names = [t["name"] for t in the_map["traces"]]
    assert names == ["top-5 hits", "your photo"]
    star = the_map["traces"][1]
    assert star["marker"]["symbol"] == "star" and len(star["x"]) == 1
    layer = _fetch_json(server, the_map["layer"])  # the gallery layer is a file the browser fetches once
    assert {"Red Stripes", "Blue Circles", "Green Checks"} == {t["name"] for t in layer["data"]}
    assert sum(len(t["x"]) for t in layer["data"]) == len(layer["meta"]["paths"]) == 33
    assert verdict


def test_search_bytes_do_not_grow_with_the_gallery(client, server, photo):
    _, the_map, _ = client.predict(handle_file(str(photo)), "pretrained", 9, api_name="/search")
    per_search = len(json.dumps(the_map))
    layer = _fetch_json(server, the_map["layer"])
    assert per_search < 4000 and "meta" not in the_map  # only the query layer travels per search
    assert len(layer["meta"]["paths"]) == 33 and sum(len(t["x"]) for t in the_map["traces"]) == 10


def test_transfer_search_finds_the_right_class(client, photo):
    gallery, _, _ = client.predict(handle_file(str(photo)), "transfer", 3, api_name="/search")
    assert all("Blue Circles" in g["caption"] for g in gallery)


def test_compare_returns_three_galleries_maps_notes_and_agreement(client, photo):
    out = client.predict(handle_file(str(photo)), 4, "Blue Circles", api_name="/compare")
    assert len(out) == 10
    assert all(len(g) == 4 for g in out[:3])
    assert all([t["name"] for t in m["traces"]] == ["top-4 hits", "your photo"] for m in out[3:6])
    transfer = [g["caption"] for g in out[2]]
    assert out[8].startswith("✅ found **Blue Circles** in **4 of 4**")  # the transfer column
    pairs = dict(re.findall(r"(\w+ ∩ \w+): \*\*(\d) of 4\*\*", out[9]))
    assert set(pairs) == {"scratch ∩ pretrained", "scratch ∩ transfer", "pretrained ∩ transfer"}
    marked = sum("✓ all 3" in c for c in transfer)
    assert marked == int(re.search(r"returned by all 3: \*\*(\d+)\*\*", out[9]).group(1))


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _bytes(synthetic_image(0, np.random.default_rng(1)), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [synthetic_image(i % 3, np.random.default_rng(i)).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


BAD = {
    "empty.jpg": (b"", "not an image"),
    "text.jpg": (b"definitely not a picture", "not an image"),
    "truncated.jpg": (_bytes(synthetic_image(0, np.random.default_rng(0)), "JPEG")[:300], "could not be decoded"),
    "tiny.png": (_bytes(Image.new("RGB", (1, 1)), "PNG"), "too small"),
    "bomb.png": (_bytes(Image.new("1", (20000, 20000)), "PNG"), "too large"),
    "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
}
GOOD = {
    "gray.png": _bytes(synthetic_image(2, np.random.default_rng(3)).convert("L"), "PNG"),
    "rgba.png": _bytes(synthetic_image(2, np.random.default_rng(4)).convert("RGBA"), "PNG"),
    "cmyk.jpg": _bytes(synthetic_image(2, np.random.default_rng(5)).convert("CMYK"), "JPEG"),
    "sixteen.png": _bytes(Image.fromarray(np.asarray(synthetic_image(2, np.random.default_rng(6)).convert("L"),
                                                      dtype=np.uint16) * 257), "PNG"),
    "palette.png": _bytes(synthetic_image(2, np.random.default_rng(7)).convert("P"), "PNG", transparency=0),
    "rotated.jpg": _exif_rotated(),
    "animated.gif": _animated_gif(),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_gets_clear_message_and_app_keeps_serving(client, photo, tmp_path, name):
    data, message = BAD[name]
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(f)), "pretrained", 3, api_name="/search")
    gallery, _, _ = client.predict(handle_file(str(photo)), "pretrained", 3, api_name="/search")
    assert len(gallery) == 3


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_but_valid_images_are_converted_and_searched(client, tmp_path, name):
    f = tmp_path / name
    f.write_bytes(GOOD[name])
    gallery, the_map, _ = client.predict(handle_file(str(f)), "pretrained", 4, api_name="/search")
    assert len(gallery) == 4 and the_map["traces"][1]["name"] == "your photo"


def test_missing_image_and_k_past_the_gallery(client, photo):
    # (an unknown encoder or an out-of-range k never reaches the app through the API: Gradio's Radio and Slider
    # refuse them first, with their own messages; the app's own messages are tested on the handlers below)
    with pytest.raises(Exception, match="Drop a photo"):
        client.predict(None, "pretrained", 3, api_name="/search")
    gallery, _, _ = client.predict(handle_file(str(photo)), "pretrained", 50, api_name="/search")
    assert len(gallery) == 33  # k larger than the (small) gallery returns all of it
    gallery, _, _ = client.predict(handle_file(str(photo)), "pretrained", 2, api_name="/search")
    assert len(gallery) == 2


def test_the_handlers_own_messages_for_an_unknown_encoder_and_a_k_that_is_no_number(built, trained, photo,
                                                                                     tmp_path):
    import gradio as gr

    from ui.search_tab import explain, search
    from ui.view import GalleryView

    view = GalleryView(SearchEngine(built, trained), tmp_path / "work")
    with pytest.raises(gr.Error, match="Unknown encoder 'nope'; choose one of scratch, pretrained, transfer"):
        search(view, Image.open(photo), "nope", 3)
    with pytest.raises(gr.Error, match="top-k must be a whole number"):
        search(view, Image.open(photo), "pretrained", "many")
    with pytest.raises(gr.Error, match="Unknown encoder"):
        explain(view, Image.open(photo), "nope", "x.jpg")


def test_app_without_any_index_explains_what_to_do(tmp_path, trained, monkeypatch):
    import gradio as gr

    from ui.root import build_demo
    from ui.search_tab import search, search_mine
    from ui.text import missing_banner
    from ui.view import GalleryView

    monkeypatch.setenv("LANDMARK_TRUNK", "efficientnet_lite0")  # what this machine has instead of VGG16 weights

    engine = SearchEngine(tmp_path / "empty", trained)
    assert not engine.backends and set(engine.unavailable) == {"scratch", "pretrained", "transfer"}
    banner = missing_banner(engine)
    assert "prepare_demo.py" in banner and "build_index.py --encoder pretrained" in banner
    demo = build_demo(engine, work_dir=tmp_path / "work")
    comps = {c["props"]["elem_id"]: c["props"] for c in demo.get_config_file()["components"]
             if c["props"].get("elem_id")}
    assert comps["missing-banner"]["value"].startswith("### ⚠️ No gallery index yet")
    assert [c[0] for c in comps["encoder"]["choices"]] == [f"{n} — unavailable" for n in ("scratch", "pretrained",
                                                                                           "transfer")]
    assert comps["map"]["value"]["layer"] is None and not list((tmp_path / "work").rglob("map-*.json"))
    ui = GalleryView(engine, tmp_path / "work")
    assert "unavailable" in ui.label("transfer") and "build_index.py" in ui.info("transfer")
    with pytest.raises(gr.Error, match="unavailable"):
        search(ui, synthetic_image(0, np.random.default_rng(0)), "transfer", 3)
    # ... and offers the way to try it right now: the Your photos tab, opened first, with every loadable encoder
    assert "try the app right now with your own photos" in banner and "Your photos" in banner
    tabs = next(c["props"] for c in demo.get_config_file()["components"] if c["type"] == "tabs")
    assert tabs["selected"] == "mine-tab"
    site = demo.site
    assert list(site.encoders()) == ["scratch", "pretrained", "transfer"]
    photos = []
    for i in range(4):
        photos.append(tmp_path / f"mine-{i}.jpg")
        synthetic_image(i % 3, np.random.default_rng(50 + i)).save(photos[-1])
    built = site.galleries.build("visitor", photos)
    gallery, the_map, verdict, hits, _ = site.route(search_mine, source="mine")(
        synthetic_image(2, np.random.default_rng(52)), "transfer", 9, built.token)
    assert len(gallery) == 4 and hits[0].path == "mine-2.jpg" and gallery[0][1].startswith("#1 · mine-2.jpg · d=")
    assert "raw distances" in verdict and the_map["layer"].endswith(".json")


def test_app_with_some_indexes_serves_those(tmp_path, built, trained):
    import shutil

    from ui.compare_tab import compare
    from ui.search_tab import search
    from ui.view import GalleryView

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    shutil.rmtree(root / "transfer")
    ui = GalleryView(SearchEngine(root, trained), tmp_path / "work")
    gallery, the_map, *_ = search(ui, synthetic_image(1, np.random.default_rng(0)), "scratch", 4)
    assert len(gallery) == 4 and the_map["traces"][1]["name"] == "your photo"
    assert "No index" in ui.info("transfer")
    out = compare(ui, synthetic_image(1, np.random.default_rng(0)), 3)
    assert [len(g) for g in out[:3]] == [3, 3, 0] and out[5]["layer"] is None
    assert out[5]["message"] == "transfer is unavailable"  # what the map shows in place of a plot
    assert "scratch ∩ pretrained" in out[9] and "transfer" not in out[9]


def test_private_gallery_without_checkpoints_says_why_the_other_encoders_are_missing(tmp_path, monkeypatch):
    from ui.mine_tab import built as after_build
    from ui.site import MINE, Site

    monkeypatch.setenv("LANDMARK_TRUNK", "efficientnet_lite0")
    site = Site(SearchEngine(tmp_path / "empty", tmp_path / "no-checkpoints"), tmp_path / "work")
    assert list(site.encoders()) == ["pretrained"] and set(site.unavailable) == {"scratch", "transfer"}
    photos = []
    for i in range(3):
        photos.append(tmp_path / f"p{i}.jpg")
        synthetic_image(i, np.random.default_rng(60 + i)).save(photos[-1])
    built = site.galleries.build("visitor", photos)
    _, _, _, note = after_build(site, built.summary(), built.token)
    assert "scratch could not index them" in note and "scratch.pt" in note and "Compare encoders" not in note
    view = site.view(MINE, built.token)
    assert "scratch.pt" in view.info("scratch") and "unavailable" in view.label("transfer")


def test_study_api_returns_the_whole_gallery_comparison_in_row_order(client, built):
    from search.index import load_index

    got = json.loads(client.predict(api_name="/study"))
    index = load_index(built / "scratch")
    assert got["k"] == 10 and got["photos"] == [it["path"] for it in index.items]
    assert set(got["agreement"]) == {"scratch|pretrained", "scratch|transfer", "pretrained|transfer"}
    for pair in got["agreement"].values():
        assert len(pair["per_photo"]) == len(index.items) and 0 <= min(pair["per_photo"]) <= max(pair["per_photo"]) <= 1
        assert pair["mean"] == pytest.approx(np.mean(pair["per_photo"]), abs=1e-3)
    for name in ("scratch", "pretrained", "transfer"):
        assert 0 < got["maps"][name]["trustworthiness"] <= 1 and 0 <= got["maps"][name]["knn_preserved"] <= 1
    assert set(got["classes"]["transfer"]) == set(index.manifest["classes"])  # every landmark, from the evaluation
    assert "neighbours" not in got and got["findings"]
