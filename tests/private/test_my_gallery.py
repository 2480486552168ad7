"""Your photos through the app's API: private galleries per session, never mixed, files served to their owner only."""

from __future__ import annotations

import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from tests.conftest import synthetic_image
from tests.private.test_uploads import BAD_ZIPS


def _photos(folder: Path, prefix: str, n: int, class_id: int = 1, seed: int = 0) -> list[Path]:
    """n photos of the same kind (so two sessions' photos would mix in one ranking if galleries were shared)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f"{prefix}{i}.jpg")
        synthetic_image(class_id, rng).save(paths[-1], quality=90)
    return paths


def test_two_sessions_each_search_only_their_own_gallery_and_files(server, tmp_path):
    a, b = Client(server, verbose=False, download_files=False), Client(server, verbose=False, download_files=False)
    assert a.cookies["landmark_visitor"] != b.cookies["landmark_visitor"]
    mine_a = _photos(tmp_path / "a", "alpha-", 4, seed=1)
    mine_b = _photos(tmp_path / "b", "beta-", 5, seed=2)
    status_a = a.predict([handle_file(str(p)) for p in mine_a], api_name="/my_gallery")
    status_b = b.predict([handle_file(str(p)) for p in mine_b], api_name="/my_gallery")
    assert status_a.startswith("Your gallery: 4 photos") and status_b.startswith("Your gallery: 5 photos")
    uploads = Path(gradio.utils.get_upload_folder())
    assert not [p for p in uploads.rglob("*.jpg") if p.name.startswith(("alpha-", "beta-"))]  # only thumbnails stay
    for client, own, k in ((a, mine_a, 4), (b, mine_b, 5)):
        for encoder in ("scratch", "pretrained", "transfer"):
            gallery, the_map, verdict = client.predict(handle_file(str(own[2])), encoder, 20, api_name="/search_mine")
            assert len(gallery) == k  # the whole gallery, and only it
            assert gallery[0]["caption"].startswith(f"#1 · {own[2].name} · d=0.00")
            assert {g["caption"].split(" · ")[1] for g in gallery} == {p.name for p in own}
            layer = httpx.get(server + the_map["layer"], cookies=client.cookies).json()
            assert sorted(layer["meta"]["paths"]) == sorted(p.name for p in own)
    # the landmark gallery is still what `search` searches, for both
    landmark, _, _ = a.predict(handle_file(str(mine_a[0])), "pretrained", 3, api_name="/search")
    assert all(g["caption"].split(" · ")[1] in ("Red Stripes", "Blue Circles", "Green Checks") for g in landmark)
    # a session's files: to its own cookie only
    gallery, the_map, _ = a.predict(handle_file(str(mine_a[0])), "pretrained", 2, api_name="/search_mine")
    urls = [g["image"]["url"] for g in gallery] + [server + the_map["layer"]]
    for url in urls:
        assert httpx.get(url, cookies=a.cookies).status_code == 200
        assert httpx.get(url, cookies=b.cookies).status_code == 404
        assert httpx.get(url).status_code == 404
    assert httpx.get(urls[0], cookies=a.cookies).content[:3] == b"\xff\xd8\xff"


def test_search_mine_without_a_gallery_is_a_clear_error(server, photo):
    with pytest.raises(Exception, match="no gallery of your own yet"):
        Client(server, verbose=False).predict(handle_file(str(photo)), "pretrained", 3, api_name="/search_mine")


@pytest.fixture()
def photo(tmp_path):
    return _photos(tmp_path, "q", 1)[0]


@pytest.mark.parametrize("case", ["traversal", "symlink", "bomb", "nested", "no photos"])
def test_bad_zips_get_their_message_through_the_app(server, tmp_path, photo, case):
    make, message = BAD_ZIPS[case]
    z = make(tmp_path / "photos.zip")
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict([handle_file(str(z))], api_name="/my_gallery")
    with pytest.raises(Exception, match="no gallery of your own yet"):
        client.predict(handle_file(str(photo)), "pretrained", 3, api_name="/search_mine")


def test_a_zip_with_sub_folders_colours_the_map_by_group(server, tmp_path):
    z = tmp_path / "trip.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for group, cid in (("beach", 1), ("forest", 2)):
            for p in _photos(tmp_path / group, f"{group}-", 3, class_id=cid, seed=cid):
                zf.write(p, f"trip/{group}/{p.name}")
    client = Client(server, verbose=False, download_files=False)
    status = client.predict([handle_file(str(z))], api_name="/my_gallery")
    assert "6 photos in 2 groups (beach, forest)" in status
    gallery, the_map, _ = client.predict(handle_file(str(tmp_path / "forest" / "forest-1.jpg")), "scratch", 3,
                                         api_name="/search_mine")
    assert gallery[0]["caption"].startswith("#1 · forest/forest-1.jpg · d=0.00")
    layer = httpx.get(server + the_map["layer"], cookies=client.cookies).json()
    assert sorted(t["name"] for t in layer["data"]) == ["beach", "forest"]


def test_ten_sessions_building_at_once_each_get_their_own_gallery(server, tmp_path):
    def session(i: int) -> tuple[int, list[str]]:
        client = Client(server, verbose=False, download_files=False)
        own = _photos(tmp_path / f"s{i}", f"session{i}-", 3, class_id=i % 3, seed=10 + i)
        client.predict([handle_file(str(p)) for p in own], api_name="/my_gallery")
        gallery, the_map, _ = client.predict(handle_file(str(own[1])), "pretrained", 10, api_name="/search_mine")
        layer = httpx.get(server + the_map["layer"], cookies=client.cookies).json()
        assert gallery[0]["caption"].startswith(f"#1 · {own[1].name} · d=0.00")
        # every photo of the gallery, shown or folded into a near-identical one ("+N near-identical")
        folded = sum(int(n) for n in re.findall(r"\+(\d+) near-identical", " ".join(g["caption"] for g in gallery)))
        return len(gallery) + folded, sorted(layer["meta"]["paths"]), gallery[0]["image"]["url"]

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(session, range(10)))
    for i, (n, paths, _first) in enumerate(results):
        assert n == 3 and paths == [f"session{i}-{j}.jpg" for j in range(3)]
    assert len({first for *_, first in results}) == 10
    assert httpx.get(server).status_code == 200  # still up
