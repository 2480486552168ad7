"""Who is asking: a random visitor cookie, and a file route that serves a private gallery only to its owner.

Gradio's file route serves any allowed file to anyone who knows its path; it has no notion of sessions. This
ASGI middleware sits in front of it: every response to a visitor without the cookie sets one (browsers and
gradio_client send it back), and a request for a file under the private galleries' folder is answered only
when its cookie is the one that built that gallery; to anyone else the file does not exist (404).
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote

from . import config

FILE_ROUTE = "/file="


def visitor_of(headers: Mapping[str, str] | None) -> str:
    """The visitor cookie of a request's headers ('' when there is none)."""
    raw = (headers or {}).get("cookie", "")
    try:
        morsel = SimpleCookie(raw).get(config.VISITOR_COOKIE)
    except Exception:  # a malformed Cookie header is a visitor without a cookie
        return ""
    return morsel.value if morsel is not None else ""


class PrivateFiles:
    """ASGI middleware: hands out visitor cookies and guards the files of private galleries."""

    def __init__(self, app: Any, root: Path, owner_of: Callable[[Path], str | None]):
        self.app = app
        self.root = Path(root).resolve()
        self.owner_of = owner_of

    def _allowed(self, path: str, visitor: str) -> bool:
        target = Path(unquote(path.split(FILE_ROUTE, 1)[1])).resolve()
        if target != self.root and self.root not in target.parents:
            return True  # not private: Gradio's own rules apply
        owner = self.owner_of(target)
        return bool(owner) and secrets.compare_digest(owner, visitor)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        visitor = visitor_of(headers)
        if FILE_ROUTE in scope["path"] and not self._allowed(scope["path"], visitor):
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"Not found."})
            return
        if visitor:
            await self.app(scope, receive, send)
            return
        cookie = (f"{config.VISITOR_COOKIE}={secrets.token_urlsafe(24)}; Path=/; HttpOnly; SameSite=Lax; "
                  f"Max-Age={30 * 24 * 3600}").encode("latin-1")

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
