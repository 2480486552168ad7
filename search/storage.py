"""Atomic file writes and checksums: nothing the pipeline writes is ever left half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_json(obj: Any, path: Path) -> None:
    """JSON file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of a CPU tensor's bytes (what a cache entry stores to refuse a corrupt one)."""
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def photo_entry(folder: Path, photo: Path, tag: str) -> Path:
    """A per-photo cache file under `folder`, named by the photo's absolute path, size and mtime and by `tag` (what
    made the entry): it changes when the photo or the tag does, and finding it opens no photo."""
    st = Path(photo).stat()
    digest = hashlib.sha256(f"{Path(photo).resolve()}|{st.st_size}|{st.st_mtime_ns}|{tag}".encode()).hexdigest()
    return Path(folder) / digest[:2] / f"{digest[2:26]}.pt"


def sha256_file(path: Path) -> str:
    """Full sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
