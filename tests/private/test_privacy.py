"""Private galleries stay private: every file route and spelling of a path, API inputs, derived images, the visitor
cookie over http and https, the per-visitor limit. Each attack is tried by a second client and by no cookie."""

from __future__ import annotations

import http.client
import json
import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from search import config
from search.errors import LandmarkError
from search.serving.engine import SearchEngine
from tests.conftest import synthetic_image


def _photos(folder: Path, prefix: str, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f"{prefix}{i}.jpg")
        synthetic_image(i % 3, rng).save(paths[-1], quality=90)
    return paths


def _raw_get(server: str, target: str, cookie: str | None = None) -> tuple[int, bytes]:
    """GET with the request target sent exactly as written (no client-side normalising of '..', '//', '%2e')."""
    url = urlparse(server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("GET", target, skip_accept_encoding=True)
    if cookie:
        conn.putheader("Cookie", f"{config.VISITOR_COOKIE}={cookie}")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


@pytest.fixture(scope="module")
def galleries(server, tmp_path_factory, app_work):
    """Two visitors with a private gallery each: their clients, a thumbnail and a map layer of A's (URL and path)."""
    tmp = tmp_path_factory.mktemp("privacy-photos")
    a, b = (Client(server, verbose=False, download_files=False) for _ in range(2))
    own_a, own_b = _photos(tmp / "a", "alpha-", 4, 1), _photos(tmp / "b", "beta-", 3, 2)
    a.predict([handle_file(str(p)) for p in own_a], api_name="/my_gallery")
    b.predict([handle_file(str(p)) for p in own_b], api_name="/my_gallery")
    gallery, the_map, _ = a.predict(handle_file(str(own_a[0])), "pretrained", 2, api_name="/search_mine")
    sessions = app_work / config.SESSIONS_DIRNAME
    thumb_url, layer_url = gallery[0]["image"]["url"], server + the_map["layer"]
    files = {}
    for name, url in (("thumbnail", thumb_url), ("map layer", layer_url)):
        files[name] = (url, _server_path(url, sessions))
        assert files[name][1].is_file()  # the test attacks a real file of A's gallery
    _, b_map, _ = b.predict(handle_file(str(own_b[0])), "pretrained", 2, api_name="/search_mine")
    b_token = _server_path(server + b_map["layer"], sessions).relative_to(sessions).parts[0]
    return {"a": a, "b": b, "files": files, "sessions": sessions, "b_token": b_token, "own_a": own_a}


def _server_path(url: str, sessions: Path) -> Path:
    """The file on the server behind a URL the app handed out (its private route, or a Gradio file route)."""
    path = urlparse(url).path
    return sessions / path.split("/private/", 1)[1] if "/private/" in path else Path(path.split("file=", 1)[1])


def _spellings(path: Path) -> dict[str, str]:
    """Every way a route of the app could be asked for a file by its path on the server."""
    p = str(path)
    rel_to_cwd = os.path.relpath(p, os.getcwd())
    encoded = quote(p, safe="")
    return {
        "file=": f"/gradio_api/file={p}",
        "file/": f"/gradio_api/file/{p}",
        "file/ no leading slash": f"/gradio_api/file/{p.lstrip('/')}",
        "unprefixed file=": f"/file={p}",
        "unprefixed file/": f"/file/{p}",
        "encoded slashes": f"/gradio_api/file={encoded}",
        "encoded slashes, file/": f"/gradio_api/file/{encoded}",
        "double-encoded": f"/gradio_api/file={quote(encoded, safe='')}",
        "symlinked folder then ..": f"/gradio_api/file=/bin/..{p}",
        "symlinked folder then %2e%2e": f"/gradio_api/file=/bin/%2e%2e{p}",
        "symlinked folder then .. (file/)": f"/gradio_api/file//bin/..{p}",
        "doubled slashes": "/gradio_api/file=" + p.replace("/", "//"),
        "dot segments": "/gradio_api/file=" + p.replace("/", "/./"),
        "relative to the working directory": f"/gradio_api/file={rel_to_cwd}",
        "in the query": f"/gradio_api/file=x?path={encoded}",
        "proxy route": f"/gradio_api/proxy={p}",
    }


@pytest.mark.parametrize("kind", ["thumbnail", "map layer"])
def test_no_route_and_no_spelling_serves_a_private_file_to_anyone_but_its_owner(galleries, server, kind):
    url, path = galleries["files"][kind]
    a, b = galleries["a"].cookies[config.VISITOR_COOKIE], galleries["b"].cookies[config.VISITOR_COOKIE]
    target = urlparse(url).path
    status, body = _raw_get(server, target, a)
    assert status == 200 and body == path.read_bytes()  # the owner's page loads it
    for who in (b, None, "forged-" + secrets.token_hex(8)):
        assert _raw_get(server, target, who)[0] == 404
    attempts = _spellings(path)
    rel = path.relative_to(galleries["sessions"]).as_posix()
    token, rest = rel.split("/", 1)
    b_token = galleries["b_token"]
    route, client_route = "/gradio_api/private", "/gradio_api/file=http://app.example/gradio_api/private"
    attempts.update({  # B's own route, walked over into A's gallery, as the browser and as gradio_client ask for it
        "private route .. into another gallery": f"{route}/{b_token}/../{rel}",
        "private route %2e%2e": f"{route}/{b_token}/%2e%2e/{rel}",
        "private route encoded slash": f"{route}/{b_token}%2F..%2F{rel.replace('/', '%2F')}",
        "private route doubled slash": f"{route}//{rel}",
        "private route dot": f"{route}/{token}/./{rest}",
        "client's route .. into another gallery": f"{client_route}/{b_token}/../{rel}",
        "client's route %2e%2e": f"{client_route}/{b_token}/%252e%252e/{rel}",
        "client's route dot": f"{client_route}/{token}/./{rest}",
        "the route before SSR": f"/private/{rel}",
    })
    for spelling in (f"{client_route}/{rel}", f"/gradio_api/file={quote(f'https://x.hf.space{route}/{rel}', safe='')}"):
        assert _raw_get(server, spelling, a) == (200, path.read_bytes())  # what gradio_client asks for the owner
        for who in (b, None, "forged-" + secrets.token_hex(8)):
            assert _raw_get(server, spelling, who)[0] == 404
    for name, spelling in attempts.items():
        for who in (b, None, a):  # the owner too: only the private route (and its URL on the file route) serves
            status, body = _raw_get(server, spelling, who)
            assert status in (400, 403, 404) and body != path.read_bytes(), (name, who, status)
    assert httpx.get(server).status_code == 200  # still up


def _call(server: str, api: str, data: list, cookies: dict | None) -> tuple[str, str]:
    """A raw API call (as any program may send it): the last SSE event and its data."""
    with httpx.Client(cookies=cookies, timeout=120) as http_:
        r = http_.post(f"{server}gradio_api/call/{api}", json={"data": data})
        assert r.status_code == 200, r.text
        event_id = r.json()["event_id"]
        text = http_.get(f"{server}gradio_api/call/{api}/{event_id}").text
    events = [line.split(": ", 1) for line in text.splitlines() if line.startswith(("event:", "data:"))]
    return events[-2][1], events[-1][1]


def test_a_private_path_is_refused_as_an_input_on_every_endpoint(galleries, server):
    url, path = galleries["files"]["thumbnail"]
    fd = {"path": str(path), "meta": {"_type": "gradio.FileData"}}
    calls = {
        "search": [fd, "pretrained", 3],
        "search_json": [fd, "pretrained", 3],
        "compare": [fd, 3, ""],
        "compare_encoders": [fd, 3, "", ["scratch", "transfer"]],
        "explain": [fd, "pretrained", "00.Red_Stripes/00_train_0.jpg"],
        "similar_to": ["pretrained", str(path), 3],
        "my_gallery": [[fd]],
        "search_mine": [fd, "pretrained", 3],
    }
    for who in ("owner", "other", "none"):
        cookies = {"owner": galleries["a"].cookies, "other": galleries["b"].cookies, "none": None}[who]
        for api, data in calls.items():
            event, payload = _call(server, api, data, cookies)
            assert event == "error", (api, who, payload[:200])
            message = json.loads(payload)["error"]
            # Gradio's own guard (the folder is on its blocked list) or the app's "not a photo of the gallery"
            assert "blocked_paths" in message or "is not a photo of" in message, (api, who, message)
    # and the owner's own gallery is still there and whole afterwards
    assert _raw_get(server, urlparse(url).path, galleries["a"].cookies[config.VISITOR_COOKIE])[0] == 200


def test_the_visitor_cookie_is_lax_on_http_and_cross_site_secure_behind_https(server):
    plain = httpx.get(server).headers["set-cookie"]
    assert "SameSite=Lax" in plain and "HttpOnly" in plain and "Secure" not in plain
    proxied = httpx.get(server, headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
    assert "SameSite=None" in proxied and "Secure" in proxied and "HttpOnly" in proxied
    assert "SameSite=Lax" not in proxied


def test_the_cookie_attributes_follow_the_scheme_of_the_request():
    from search.private.visitor import is_https, visitor_cookie

    assert is_https({"scheme": "https"}, {}) and is_https({"scheme": "http"}, {"x-forwarded-proto": "https"})
    assert not is_https({"scheme": "http"}, {}) and not is_https({"scheme": "http"}, {"x-forwarded-proto": "http"})
    assert "SameSite=None; Secure" in visitor_cookie("v", True) and "SameSite=Lax" in visitor_cookie("v", False)


@pytest.fixture()
def private_galleries(tmp_path, trained):
    from search.models.encoders import EncoderStore
    from search.models.trunks import OFFLINE_TRUNK
    from search.private.galleries import PrivateGalleries

    store = EncoderStore(trained)
    encoders = {"pretrained": store.load("pretrained", trunk=OFFLINE_TRUNK)}
    return PrivateGalleries(tmp_path / "sessions", lambda: encoders,
                            config.MyGalleryLimits(max_galleries=3, max_per_visitor=1))


def test_one_visitor_cannot_fill_every_slot_a_new_build_replaces_their_gallery(private_galleries, tmp_path):
    photos = _photos(tmp_path / "p", "p", 3, 5)
    first = private_galleries.build("visitor-a", photos)
    for _ in range(5):  # far more builds than the cap of 3
        latest = private_galleries.build("visitor-a", photos)
    assert private_galleries.get(first.token) is None and not first.folder.exists()
    assert [p.name for p in private_galleries.root.iterdir()] == [latest.token]
    others = [private_galleries.build(f"visitor-{i}", photos) for i in "bc"]  # the other two slots are free
    assert all(private_galleries.get(g.token) is g for g in [latest, *others])
    with pytest.raises(LandmarkError, match="as many private galleries as it can"):
        private_galleries.build("visitor-d", photos)
    assert private_galleries.get(latest.token) is latest  # a refused build takes nobody's gallery


def test_a_file_of_a_private_gallery_is_refused_as_an_upload(private_galleries, tmp_path):
    g = private_galleries.build("visitor-a", _photos(tmp_path / "p", "p", 3, 6))
    thumb = next((g.folder / "index").rglob("*.jpg"))
    for spelling in (thumb, Path(f"{thumb.parent}/./{thumb.name}"), Path(f"/bin/..{thumb}")):
        with pytest.raises(LandmarkError, match="file of a private gallery"):
            private_galleries.build("visitor-a", [spelling])


def test_heatmaps_of_a_private_gallery_stay_in_it_and_out_of_gradios_cache(built, trained, tmp_path):
    from ui.components import UrlImage
    from ui.search_tab import explain
    from ui.site import MINE, Site

    site = Site(SearchEngine(built, trained), tmp_path / "work")
    photos = _photos(tmp_path / "p", "p", 3, 7)
    gallery = site.galleries.build("visitor-a", photos)
    site.open_view(gallery, "http://app.example")
    view = site.view(MINE, gallery.token)
    q, h = explain(view, open_query(photos[1]), "pretrained", photos[0].name)
    for url in (q, h):
        assert url.startswith(f"http://app.example/gradio_api/private/{gallery.token}/derived/")
        assert (gallery.folder / url.split(f"/private/{gallery.token}/", 1)[1]).is_file()
    component = UrlImage()
    cache = Path(component.GRADIO_CACHE)
    before = set(cache.rglob("*")) if cache.exists() else set()
    out = component.postprocess(q)  # the URL goes to the browser as it is: nothing lands in the shared cache
    assert out.url == q and out.path == q
    assert (set(cache.rglob("*")) if cache.exists() else set()) == before
    site.forget(gallery.token)
    assert not gallery.folder.exists()


def open_query(path: Path):
    from search.photos.images import open_image

    return open_image(path)


def test_a_failed_build_removes_the_uploaded_originals_too(server, tmp_path):
    import gradio

    z = tmp_path / "photos.zip"
    z.write_bytes(b"PK\x03\x04 truncated")  # a broken zip: the build fails
    own = _photos(tmp_path / "o", "failing-", 2, 8)
    client = Client(server, verbose=False, download_files=False)
    with pytest.raises(Exception, match="not a readable zip"):
        client.predict([handle_file(str(p)) for p in [*own, z]], api_name="/my_gallery")
    uploads = Path(gradio.utils.get_upload_folder())
    assert not [p for p in uploads.rglob("*") if p.name.startswith("failing-") or p.name == "photos.zip"]


def test_a_private_gallerys_result_downloads_stay_in_it_and_out_of_gradios_cache(built, trained, tmp_path):
    from ui.components import UrlFiles
    from ui.search_tab import downloads, search
    from ui.site import MINE, Site

    site = Site(SearchEngine(built, trained), tmp_path / "work")
    photos = _photos(tmp_path / "p", "secret-", 3, 9)
    gallery = site.galleries.build("visitor-a", photos)
    site.open_view(gallery, "http://app.example")
    view = site.view(MINE, gallery.token)
    hits = search(view, open_query(photos[1]), "pretrained", 3)[3]
    urls = downloads(view, "pretrained", hits)
    assert len(urls) == 2
    for url in urls:
        assert url.startswith(f"http://app.example/gradio_api/private/{gallery.token}/downloads/")
        assert "secret-" in (gallery.folder / url.split(f"/private/{gallery.token}/", 1)[1]).read_text()
    component = UrlFiles(file_count="multiple")
    cache = Path(component.GRADIO_CACHE)
    before = set(cache.rglob("*")) if cache.exists() else set()
    out = component.postprocess(urls)  # the URLs go to the browser as they are: nothing lands in the shared cache
    assert [f.url for f in out.root] == urls and [f.path for f in out.root] == urls
    assert (set(cache.rglob("*")) if cache.exists() else set()) == before
    site.forget(gallery.token)
