"""A local stand-in for the Hugging Face Hub's read endpoints that `snapshot_download` calls: repo info at a
revision, the recursive tree listing, and file resolution (HEAD for the metadata, GET for the bytes)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeHub:
    """Model repos held in memory: {repo_id: {revision: {path: bytes}}}; every revision gets a fixed commit sha."""

    def __init__(self, repos: dict[str, dict[str, dict[str, bytes]]]):
        self.repos = repos
        self.hits: list[str] = []
        self.shas = {(r, rev): hashlib.sha1(f"{r}@{rev}".encode()).hexdigest() for r, revs in repos.items()
                     for rev in revs}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_GET(self):
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _find(self, repo: str, rev: str):
        """(files, sha) of a repo at a revision given by name or by its commit sha; an error code otherwise."""
        if repo not in self.repos:
            return None, "RepoNotFound"
        for name, files in self.repos[repo].items():
            if rev in (name, self.shas[(repo, name)]):
                return (files, self.shas[(repo, name)]), None
        return None, "RevisionNotFound"

    def answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(h.path).path)
        self.hits.append(f"{h.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo, kind, rev = "/".join(parts[2:4]), parts[4], parts[5]
            found, error = self._find(repo, rev)
            if error:
                return self._send(h, 404, b'{"error": "not found"}', {"X-Error-Code": error}, body)
            files, sha = found
            if kind == "revision":
                doc = {"id": repo, "modelId": repo, "sha": sha, "private": False,
                       "siblings": [{"rfilename": f} for f in sorted(files)]}
            else:
                doc = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                       for f, b in sorted(files.items())]
            return self._send(h, 200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, body)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            found, error = self._find(repo, rev)
            if error or name not in found[0]:
                return self._send(h, 404, b"not found", {"X-Error-Code": error or "EntryNotFound"}, body)
            data = found[0][name]
            return self._send(h, 200, data, {"X-Repo-Commit": found[1], "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                                             "Content-Type": "application/octet-stream"}, body)
        self._send(h, 404, b"not found", {}, body)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict, body: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)
