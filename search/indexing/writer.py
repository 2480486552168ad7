"""The writer of the offline flow: thumbnails (content-addressed, shared by every encoder's index) and the index
files, written to temp names and swapped in whole so the previous index serves until the new one is complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search import config
from search.index import (
    AUGMENTED,
    CHECKED_FILES,
    COORDS,
    EMBEDDINGS,
    MANIFEST,
    METADATA,
    index_path,
    manifest_checksum,
    recover,
)
from search.models.encoders import Encoder
from search.storage import atomic_path, sha256_file, write_json


def write_thumbnails(names: Sequence[str], jpegs: Sequence[bytes], thumbs: Path) -> int:
    """Write each thumbnail not already there, atomically; returns how many were new."""
    thumbs = Path(thumbs)
    thumbs.mkdir(parents=True, exist_ok=True)
    new = 0
    for name, data in zip(names, jpegs):
        if name and data and not (thumbs / name).exists():
            with atomic_path(thumbs / name) as tmp:
                tmp.write_bytes(data)
            new += 1
    return new


def remove_stale_temp_files(folder: Path, older_than_s: float = config.STALE_TEMP_SECONDS) -> None:
    """Delete temp files a killed writer left behind (old enough that no live writer still owns them)."""
    cutoff = time.time() - older_than_s
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except FileNotFoundError:
            pass


def swap_into_place(tmp: Path, final: Path) -> None:
    """Replace the index directory `final` with `tmp`: the old one stays loadable until the new one is complete."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        recover(final)
        shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class IndexArrays:
    """An index's arrays: the gallery's unit vectors, its 2-D map and, for an encoder with query expansion, the
    gallery as that search ranks it (stored, so that a search costs one extra matrix product)."""

    embeddings: np.ndarray
    coords: np.ndarray
    augmented: np.ndarray | None = None


def write_index(index_root: Path, encoder: Encoder, arrays: IndexArrays, items: list[dict], meta: dict,
                float16: bool = False) -> Path:
    """Write arrays + metadata + manifest into a temp dir and swap it in as `index_root/<encoder>/`."""
    embeddings, coords, augmented = arrays.embeddings, arrays.coords, arrays.augmented
    index_root = Path(index_root)
    final = index_path(index_root, encoder.name)
    for stale in index_root.glob(f".{encoder.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=index_root, prefix=f".{encoder.name}.new-"))
    try:
        np.save(tmp / EMBEDDINGS, embeddings.astype(np.float16 if float16 else np.float32))
        np.save(tmp / COORDS, coords.astype(np.float32))
        checked = CHECKED_FILES
        if augmented is not None:
            np.save(tmp / AUGMENTED, augmented.astype(np.float16 if float16 else np.float32))
            checked = (*CHECKED_FILES, AUGMENTED)
        (tmp / METADATA).write_text(json.dumps(items))
        manifest = {
            "schema_version": config.INDEX_SCHEMA_VERSION,
            "encoder": encoder.name, "label": encoder.label, "trunk": encoder.trunk_name,
            "encoder_fingerprint": encoder.fingerprint, "dim": int(embeddings.shape[1]), "count": int(len(items)),
            "dtype": "float16" if float16 else "float32", "thumbnails": config.THUMBNAIL_DIRNAME,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **meta,
            "files": {name: sha256_file(tmp / name) for name in checked},
        }
        manifest["checksum"] = manifest_checksum(manifest)
        write_json(manifest, tmp / MANIFEST)
        swap_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
