"""A photo from a web address: fetched from a public host only, within a size cap and a timeout, and checked as an
upload is; every refusal says why in one line."""

from __future__ import annotations

import asyncio

import pytest

from search.errors import BadImageError
from search.photos.web import WebPhotoRules, fetch_photo
from tests.conftest import PHOTO_HOST_PHOTO, trusting_localhost


def fetch(url: str, rules: WebPhotoRules | None = None):
    return asyncio.run(fetch_photo(url, rules or trusting_localhost()))


def refusal(url: str, rules: WebPhotoRules | None = None) -> str:
    with pytest.raises(BadImageError) as caught:
        fetch(url, rules)
    return str(caught.value)


def test_a_photo_on_a_trusted_host_is_fetched_and_decoded(photo_host, dataset):
    from PIL import Image

    got = fetch(f"{photo_host}/photo.jpg")
    expected = Image.open(dataset / PHOTO_HOST_PHOTO)
    assert got.mode == "RGB" and got.size == expected.size


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "localhost",
    "10.0.0.1", "192.168.1.10", "172.16.5.4", "169.254.169.254", "[fe80::1]", "[fd00::1]",
])
def test_loopback_private_and_link_local_addresses_are_refused_in_every_spelling(photo_host, address):
    port = photo_host.rsplit(":", 1)[1]
    # with the default rules (the app's): localhost is trusted only by the tests' apps
    message = refusal(f"http://{address}:{port}/photo.jpg", WebPhotoRules())
    assert "is not a public address: only photos on the public web can be fetched." in message


def test_a_redirect_from_a_trusted_host_to_loopback_is_refused(photo_host):
    assert "127.0.0.1 is not a public address" in refusal(f"{photo_host}/to-loopback")


@pytest.mark.parametrize("url, says", [
    ("", "starting with http:// or https://"),
    ("file:///etc/passwd", "starting with http:// or https://"),
    ("ftp://example.com/photo.jpg", "starting with http:// or https://"),
    ("/tmp/photo.jpg", "starting with http:// or https://"),
    ("http://", "starting with http:// or https://"),
    ("http://[not-an-address]/x.jpg", "not a web address"),
    ("http://no-such-host.invalid/x.jpg", "No web host is called no-such-host.invalid."),
])
def test_what_is_not_a_web_address_is_refused(url, says):
    assert says in refusal(url)


def test_a_non_image_is_refused_as_an_upload_is(photo_host):
    assert refusal(f"{photo_host}/notes.txt") == (
        "The file at that address is not an image PIL can read (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF).")


@pytest.mark.parametrize("path", ["/huge.jpg", "/endless.jpg"])
def test_an_oversized_body_is_refused_whether_declared_or_streamed(photo_host, path):
    assert refusal(f"{photo_host}{path}") == "The photo at that address is larger than 20 MB."


def test_a_host_that_does_not_answer_in_time_is_refused(photo_host):
    message = refusal(f"{photo_host}/slow.jpg", trusting_localhost(timeout_seconds=0.5))
    assert message == "The address did not answer within 0.5 s."


def test_an_error_status_is_refused(photo_host):
    assert refusal(f"{photo_host}/missing.jpg") == "The address answered 404 Not Found, not a photo."
