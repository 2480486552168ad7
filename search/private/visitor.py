"""Who is asking, and the one route that serves a private gallery's files: to the visitor cookie that built it.

Private galleries are not a Gradio static or allowed path (and are on its blocked list), so Gradio serves none of
their files. This ASGI middleware sits in front of the whole app:
- `/gradio_api/private/<token>/<file>` is answered from that gallery's folder when, and only when, the request's
  visitor cookie is the one that built it, and the file lies inside the folder both lexically and physically. The
  route lies under `/gradio_api/` because with server-side rendering (on by default on Spaces) Gradio's Node proxy
  sends only that prefix and a few others to Python. gradio_client downloads every file output, a URL one too,
  through Gradio's file route (`/gradio_api/file=<url>`): a URL of this route asked for that way is answered alike;
- any other request that names a place inside the private galleries' folder, by any route and in any spelling
  (percent-encoded, `..` after a symlinked folder, doubled slashes, `./`, relative to the working directory), is
  answered 404 before the app sees it;
- every response to a visitor without the cookie sets one (browsers and gradio_client send it back):
  `SameSite=None; Secure` when the request came over https (a Space shows the app in a cross-site iframe), `Lax`
  on plain http.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.responses import FileResponse, PlainTextResponse

from search import config

PRIVATE_ROUTE = "/gradio_api/private/"
FILE_ROUTE = "/gradio_api/file="  # Gradio's own route for a file output, which gradio_client downloads through
COOKIE_MAX_AGE = 30 * 24 * 3600


def visitor_of(headers: Mapping[str, str] | None) -> str:
    """The visitor cookie of a request's headers ('' when there is none)."""
    raw = (headers or {}).get("cookie", "")
    try:
        morsel = SimpleCookie(raw).get(config.VISITOR_COOKIE)
    except Exception:  # a malformed Cookie header is a visitor without a cookie
        return ""
    return morsel.value if morsel is not None else ""


def is_https(scope: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    """Whether the browser reached the app over https (directly, or through a proxy that says so)."""
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return scope.get("scheme") == "https" or forwarded == "https"


def visitor_cookie(value: str, https: bool) -> str:
    """The Set-Cookie value of a new visitor cookie: cross-site capable over https, Lax on plain http."""
    same_site = "SameSite=None; Secure" if https else "SameSite=Lax"
    return f"{config.VISITOR_COOKIE}={value}; Path=/; HttpOnly; {same_site}; Max-Age={COOKIE_MAX_AGE}"


def private_url(root: Path, path: Path) -> str:
    """The app-relative URL of a file inside a private gallery (`private/<token>/<file>`)."""
    rel = Path(path).resolve().relative_to(Path(root).resolve())
    return PRIVATE_ROUTE.lstrip("/") + rel.as_posix()


def _decoded(text: str, rounds: int = 4) -> str:
    """Percent-decoding applied until nothing changes (a double-encoded path decodes all the way)."""
    for _ in range(rounds):
        new = unquote(text)
        if new == text:
            break
        text = new
    return text


def _candidates(text: str) -> Iterator[str]:
    """Every filesystem path a route could read out of a request path or query: each tail after a '/' or '='."""
    text = _decoded(text).replace("\\", "/")
    for m in re.finditer(r"[/=]", text):
        tail = text[m.start() + (m.group() == "="):]
        if tail:
            yield tail


def private_route_of(path: str) -> str | None:
    """The private route a request path asks for: itself, or the private URL it asks Gradio's file route for (as
    gradio_client does); None for any other request."""
    if path.startswith(PRIVATE_ROUTE):
        return path
    if path.startswith(FILE_ROUTE):
        url = urlsplit(_decoded(path[len(FILE_ROUTE):]))
        if url.scheme in ("http", "https") and PRIVATE_ROUTE in url.path:
            return PRIVATE_ROUTE + url.path.split(PRIVATE_ROUTE, 1)[1]
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def path_forms(path: Path | str) -> set[str]:
    """Every way the filesystem may take a path: as written (absolute, normalised), and with symlinks followed
    before and after normalising ('/bin/../x' is '/x' lexically but '/usr/x' physically)."""
    lexical = os.path.normpath(os.path.abspath(path))
    return {lexical, os.path.realpath(path), os.path.realpath(lexical)}


def inside_any(path: Path | str, roots: set[str]) -> bool:
    """Whether any form of `path` lies in any of `roots` (the `path_forms` of a folder)."""
    return any(_inside(form, root) for form in path_forms(path) for root in roots)


class PrivateFiles:
    """ASGI middleware: hands out visitor cookies, serves private gallery files to their owner, denies all else."""

    def __init__(self, app: Any, root: Path, owner_of: Callable[[Path], str | None]):
        self.app = app
        self.root = Path(root)
        self.roots = path_forms(self.root)  # a request may reach the folder as written or as resolved
        self.owner_of = owner_of

    def names_private(self, text: str) -> bool:
        """Whether a request path or query names anything inside the private galleries' folder, in any spelling."""
        return any(inside_any(re.sub(r"/+", "/", tail), self.roots) for tail in _candidates(text))

    def private_file(self, route_path: str, visitor: str) -> Path | None:
        """The file a `/private/<token>/<file>` request names, when this visitor owns it; else None."""
        rel = _decoded(route_path[len(PRIVATE_ROUTE):])
        parts = rel.split("/")
        if not visitor or len(parts) < 2 or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        owner = self.owner_of(self.root / parts[0])
        if not owner or not secrets.compare_digest(owner, visitor):
            return None
        folder = self.root / parts[0]
        target = folder.joinpath(*parts[1:])
        real_folder, real_target = os.path.realpath(folder), os.path.realpath(target)
        if not _inside(os.path.normpath(target), os.path.normpath(folder)) or not _inside(real_target, real_folder):
            return None
        return Path(real_target) if os.path.isfile(real_target) else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        visitor = visitor_of(headers)
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        raw = scope.get("raw_path", b"").decode("latin-1")
        response = None
        route = private_route_of(path)
        if route is not None and scope["type"] == "http":
            target = self.private_file(route, visitor)
            response = (FileResponse(target, headers={"Cache-Control": "private, max-age=3600", "Vary": "Cookie"})
                        if target is not None else None)
            if response is None:
                response = PlainTextResponse("Not found.", status_code=404)
        elif self.names_private(path) or self.names_private(raw) or self.names_private(query):
            response = PlainTextResponse("Not found.", status_code=404)
        if response is not None and scope["type"] == "http":
            await response(scope, receive, send)
            return
        if response is not None:  # a websocket naming a private path: refuse the handshake
            await send({"type": "websocket.close", "code": 1008})
            return
        if visitor or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = visitor_cookie(secrets.token_urlsafe(24), is_https(scope, headers)).encode("latin-1")

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
