"""A photo from a web address: fetched the way Gradio fetches a URL input (safehttpx's address validation: no
loopback, private, link-local or reserved address, each redirect checked again), with a size cap and a timeout,
then decoded with the same checks as an upload."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
import safehttpx
from PIL import Image

from search import config
from search.errors import BadImageError
from search.photos.images import open_image

# Hugging Face splits its DNS: from a Space its own hosts may resolve to internal addresses (Gradio trusts them too).
TRUSTED_HOSTS = ("hf.co", "huggingface.co", "*.hf.co", "*.huggingface.co")


@dataclass(frozen=True)
class WebPhotoRules:
    """What a fetch of a visitor's URL may do."""

    max_bytes: int = config.MAX_UPLOAD_BYTES
    timeout_seconds: float = config.PHOTO_URL_TIMEOUT_SECONDS
    max_redirects: int = config.PHOTO_URL_MAX_REDIRECTS
    # Hosts fetched without the address check, in Gradio's wildcard spelling. Beyond the Hub's own, an app is given
    # more only by whoever builds it (the tests: their local image host).
    trusted_hosts: tuple[str, ...] = TRUSTED_HOSTS


async def _transport(host: str, rules: WebPhotoRules) -> httpx.AsyncBaseTransport | None:
    """The connection for one host: pinned to an address that passed validation, or plain for a trusted host."""
    if safehttpx.matches_domain_whitelist(host, list(rules.trusted_hosts)):
        return None
    try:
        return safehttpx.AsyncSecureTransport(await safehttpx.async_validate_url(host))
    except ValueError as exc:
        if "Unable to resolve" in str(exc):  # safehttpx's words for a name no DNS knows
            raise BadImageError(f"No web host is called {host}.") from exc
        raise BadImageError(f"{host} is not a public address: only photos on the public web can be fetched.") from exc


async def _get(url: str, rules: WebPhotoRules) -> bytes | str:
    """The body of one GET (at most max_bytes), or the next address when the answer is a redirect."""
    transport = await _transport(httpx.URL(url).host, rules)
    async with httpx.AsyncClient(transport=transport, timeout=rules.timeout_seconds) as client, \
            client.stream("GET", url, follow_redirects=False) as response:
        if response.has_redirect_location:
            return urljoin(str(response.url), response.headers["Location"])
        if response.status_code != 200:
            raise BadImageError(f"The address answered {response.status_code} {response.reason_phrase}, not a photo.")
        too_big = BadImageError(f"The photo at that address is larger than {rules.max_bytes // 2**20} MB.")
        if int(response.headers.get("content-length") or 0) > rules.max_bytes:
            raise too_big
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > rules.max_bytes:
                raise too_big
        return bytes(body)


async def fetch_photo(url: str, rules: WebPhotoRules = WebPhotoRules()) -> Image.Image:
    """The photo at an http(s) URL as an RGB image, or BadImageError saying why it cannot be had."""
    url = (url or "").strip()
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise BadImageError(f"That is not a web address: {url[:80]!r}.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadImageError("Give a photo's web address starting with http:// or https://.")
    try:
        for _ in range(rules.max_redirects + 1):
            got = await _get(url, rules)
            if isinstance(got, bytes):
                try:
                    return open_image(got)
                except BadImageError as exc:  # open_image calls bytes an "upload"
                    raise BadImageError(str(exc).replace("upload", "The file at that address", 1)) from exc
            url = got
    except httpx.TimeoutException as exc:
        raise BadImageError(f"The address did not answer within {rules.timeout_seconds:g} s.") from exc
    except httpx.HTTPError as exc:
        raise BadImageError(f"The photo could not be fetched ({type(exc).__name__}).") from exc
    raise BadImageError(f"The address redirected more than {rules.max_redirects} times.")
