"""The selection's API, as scripts and AI assistants use it (the default gradio_client, the MCP schema): the
aligned gallery map of an encoder, and where a selection of photos lies under every encoder."""

from __future__ import annotations

import json
import urllib.request

import pytest

from search.serving.engine import SearchEngine


def test_gallery_map_is_the_served_aligned_map(client, built, trained):
    out = json.loads(client.predict("pretrained", api_name="/gallery_map"))
    engine = SearchEngine(built, trained)
    index = engine.backends["pretrained"].index
    assert out["encoder"] == "pretrained" and len(out["points"]) == len(index.items)
    first = out["points"][0]
    assert set(first) == {"path", "landmark", "x", "y"} and first["path"] == index.items[0]["path"]
    assert (first["x"], first["y"]) == pytest.approx(tuple(index.coords[0]), abs=1e-3)  # the shared frame's


def test_describe_selection_says_where_the_photos_lie_and_how_well_each_encoder_keeps_them(client):
    points = json.loads(client.predict("scratch", api_name="/gallery_map"))["points"]
    blue = [p["path"] for p in points if p["landmark"] == "Blue Circles"]
    out = json.loads(client.predict(json.dumps(blue + blue[:1]), api_name="/describe_selection"))
    assert out["landmarks"] == {"Blue Circles": len(blue)}  # each photo once
    assert set(out["encoders"]) == {"scratch", "pretrained", "transfer"}
    for e in out["encoders"].values():
        assert sorted(p["path"] for p in e["points"]) == sorted(blue)
        assert 0 <= e["together"] <= 1
    # a whole landmark stays together under the encoder trained on the landmarks
    assert out["encoders"]["transfer"]["together"] > 0.5


@pytest.mark.parametrize(("paths", "says"), [
    ("[]", "The selection is empty"),
    (json.dumps([f"train/x/{i}.jpg" for i in range(10_000)]), "at most 5,000"),
    (json.dumps(["trip/IMG_0001.jpg"]), "'trip/IMG_0001.jpg'"),  # e.g. a visitor's private photo: not in it
    ("not json", "JSON"),
])
def test_a_bad_selection_gets_one_clear_message(client, paths, says):
    with pytest.raises(Exception, match=says):
        client.predict(paths, api_name="/describe_selection")
    assert json.loads(client.predict("scratch", api_name="/gallery_map"))["points"]  # the app stays up


def test_gallery_map_of_an_encoder_that_is_not_configured_is_refused(client):
    with pytest.raises(Exception, match="nope"):
        client.predict("nope", api_name="/gallery_map")


def test_the_selection_tools_are_mcp_tools(server):
    with urllib.request.urlopen(server + "gradio_api/mcp/schema") as r:
        tools = {t["name"]: t for t in json.loads(r.read())}
    assert set(tools["gallery_map"]["inputSchema"]["properties"]) == {"encoder"}
    assert set(tools["describe_selection"]["inputSchema"]["properties"]) == {"paths"}
    assert "together" in tools["describe_selection"]["description"]
