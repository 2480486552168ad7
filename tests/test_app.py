"""The Gradio app through its API (gradio_client): search, compare, bad inputs, file serving."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from search.bench import free_port  # noqa: E402
from search.demo import write_examples  # noqa: E402
from search.engine import SearchEngine  # noqa: E402
from tests.conftest import synthetic_image  # noqa: E402


@pytest.fixture(scope="module")
def server(built, trained, dataset):
    import app

    write_examples(dataset, built, n=3)
    port = free_port()
    demo = app.launch(SearchEngine(built, trained), "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "query.jpg"
    synthetic_image(1, np.random.default_rng(42)).save(path)
    return path


def _plot_traces(plot) -> list[dict]:
    return json.loads(plot["plot"])["data"]


@pytest.mark.parametrize("encoder", ["scratch", "pretrained", "transfer"])
def test_search_returns_k_captioned_items_and_map_with_query(client, photo, encoder):
    gallery, plot = client.predict(handle_file(str(photo)), encoder, 5, api_name="/search")
    assert len(gallery) == 5
    captions = [g["caption"] for g in gallery]
    assert [c.split(" · ")[0] for c in captions] == ["#1", "#2", "#3", "#4", "#5"]
    dists = [float(c.split("d=")[1]) for c in captions]
    assert dists == sorted(dists)
    traces = _plot_traces(plot)
    names = [t["name"] for t in traces]
    assert "your photo" in names and "top-5 hits" in names
    assert {"Red Stripes", "Blue Circles", "Green Checks"} <= set(names)
    star = next(t for t in traces if t["name"] == "your photo")
    assert star["marker"]["symbol"] == "star" and len(star["x"]) == 1


def test_transfer_search_finds_the_right_class(client, photo):
    gallery, _ = client.predict(handle_file(str(photo)), "transfer", 3, api_name="/search")
    assert all("Blue Circles" in g["caption"] for g in gallery)


def test_compare_returns_three_galleries_and_maps(client, photo):
    out = client.predict(handle_file(str(photo)), 4, api_name="/compare")
    assert len(out) == 6
    assert all(len(g) == 4 for g in out[:3])
    assert all("your photo" in [t["name"] for t in _plot_traces(p)] for p in out[3:])


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
    "sixteen.png": _bytes(Image.fromarray((np.asarray(synthetic_image(2, np.random.default_rng(6)).convert("L"),
                                                      dtype=np.uint16) * 257)), "PNG"),
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
    gallery, _ = client.predict(handle_file(str(photo)), "pretrained", 3, api_name="/search")
    assert len(gallery) == 3


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_but_valid_images_are_converted_and_searched(client, tmp_path, name):
    f = tmp_path / name
    f.write_bytes(GOOD[name])
    gallery, plot = client.predict(handle_file(str(f)), "pretrained", 4, api_name="/search")
    assert len(gallery) == 4 and "your photo" in plot["plot"]


def test_missing_image_unknown_encoder_and_bad_k(client, photo):
    with pytest.raises(Exception, match="Drop a photo"):
        client.predict(None, "pretrained", 3, api_name="/search")
    with pytest.raises(Exception, match="nope"):
        client.predict(handle_file(str(photo)), "nope", 3, api_name="/search")
    with pytest.raises(Exception, match="less than minimum"):
        client.predict(handle_file(str(photo)), "pretrained", 0, api_name="/search")
    with pytest.raises(Exception, match="greater than maximum"):
        client.predict(handle_file(str(photo)), "pretrained", 500, api_name="/search")
    gallery, _ = client.predict(handle_file(str(photo)), "pretrained", 50, api_name="/search")
    assert len(gallery) == 33  # k larger than the (small) gallery returns all of it
    gallery, _ = client.predict(handle_file(str(photo)), "pretrained", 2, api_name="/search")
    assert len(gallery) == 2


def test_app_without_any_index_explains_what_to_do(tmp_path, trained):
    import gradio as gr

    import app

    engine = SearchEngine(tmp_path / "empty", trained)
    assert not engine.backends and set(engine.unavailable) == {"scratch", "pretrained", "transfer"}
    banner = app.missing_banner(engine)
    assert "prepare_demo.py" in banner and "build_index.py --encoder pretrained" in banner
    demo = app.build_demo(engine)  # builds without crashing
    assert isinstance(demo, gr.Blocks)
    ui = app.App(engine)
    assert "unavailable" in ui.label("transfer") and "build_index.py" in ui.info("transfer")
    with pytest.raises(gr.Error, match="unavailable"):
        ui.search(synthetic_image(0, np.random.default_rng(0)), "transfer", 3)


def test_app_with_some_indexes_serves_those(tmp_path, built, trained):
    import shutil

    import app

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    shutil.rmtree(root / "transfer")
    ui = app.App(SearchEngine(root, trained))
    gallery, plot = ui.search(synthetic_image(1, np.random.default_rng(0)), "scratch", 4)
    assert len(gallery) == 4 and "your photo" in plot.plot
    assert "No index" in ui.info("transfer")
    galleries_and_plots = ui.compare(synthetic_image(1, np.random.default_rng(0)), 3)
    assert [len(g) for g in galleries_and_plots[:3]] == [3, 3, 0] and galleries_and_plots[5] is None
