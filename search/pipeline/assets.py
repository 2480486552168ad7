"""The prepared demo (indexes and checkpoints) from a Hugging Face Hub model repo: published by
`scripts/publish.py`, fetched by the app at start with `huggingface_hub.snapshot_download` into the Hub cache (a
restart with a warm cache, `preload_from_hub`, or `HF_HUB_OFFLINE=1` needs no network), laid out as real files
and then verified as any index is.

The Hub cache holds each file once, in `blobs/`, behind a relative symlink in `snapshots/<commit>/`. Gradio
resolves symlinks before it checks a file against its allowed paths, so a thumbnail served from the snapshot would
be refused as lying outside it; `materialise` hard-links (or copies) the snapshot into a folder of real files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.models.encoders import REGISTRY

INDEXES, CHECKPOINTS = "indexes", "checkpoints"  # the repo's two folders, as prepare_demo.py writes them


def published() -> tuple[str, ...]:
    """What is published and fetched: every configured encoder's index and checkpoint, the indexes' thumbnails,
    examples and study (no caches, no fold models, no --gallery indexes)."""
    folders = (*REGISTRY, config.THUMBNAIL_DIRNAME, config.EXAMPLES_DIRNAME, "study")
    return (*(f"{INDEXES}/{d}/*" for d in folders),
            *(f"{CHECKPOINTS}/{s.checkpoint}" for s in REGISTRY.values() if s.checkpoint))


@dataclass(frozen=True)
class AssetRepo:
    """A Hub model repo holding a prepared demo, at a revision (a branch, tag or commit; None: main)."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> AssetRepo:
        """'OWNER/NAME' or 'OWNER/NAME@REVISION'."""
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        repo, at, revision = str(spec).strip().partition("@")
        try:
            if repo.count("/") != 1 or (at and not revision.strip()) or any(c.isspace() for c in revision):
                raise HFValidationError("not OWNER/NAME[@REVISION]")
            validate_repo_id(repo)
        except HFValidationError as exc:
            raise LandmarkError(f"{spec!r} is not a Hub repo: give OWNER/NAME or OWNER/NAME@REVISION.") from exc
        return cls(repo, revision or None)

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def fetch(spec: str, endpoint: str | None = None, cache_dir: Path | None = None,
          into: Path | None = None) -> tuple[Path, Path]:
    """(index dir, checkpoint dir) of the prepared demo in a Hub repo, downloaded or taken from the Hub cache and
    laid out as real files under `into` (default: the app's work dir); one clear line (a LandmarkError) when the
    repo, its revision or its files cannot be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import HFValidationError

    repo = AssetRepo.parse(spec)
    try:
        root = Path(snapshot_download(repo.repo_id, repo_type="model", revision=repo.revision,
                                      allow_patterns=list(published()), endpoint=endpoint, cache_dir=cache_dir))
    except RevisionNotFoundError as exc:
        raise LandmarkError(f"The Hub repo {repo.repo_id} has no revision {repo.revision!r}: check "
                            f"{config.ASSETS_ENV} (or --assets).") from exc
    except RepositoryNotFoundError as exc:
        raise LandmarkError(f"No Hub model repo {repo.repo_id} (or it is private and no token is set): publish "
                            "one with scripts/publish.py, or check the name.") from exc
    except LocalEntryNotFoundError as exc:
        raise LandmarkError(f"{repo} is not in the Hub cache and the Hub cannot be reached (offline?): start once "
                            "online to fetch it.") from exc
    except (EntryNotFoundError, HfHubHTTPError, HFValidationError, OSError, ValueError) as exc:
        raise LandmarkError(f"The prepared demo in {repo} could not be fetched: {exc}") from exc
    if not (root / INDEXES).is_dir():
        raise LandmarkError(f"{repo} holds no {INDEXES}/ folder: publish it with scripts/publish.py --repo "
                            f"{repo.repo_id}.")
    into = Path(into) if into is not None else config.APP_WORK_DIR / "assets"
    try:
        real = materialise(root, into / repo.repo_id.replace("/", "--") / root.name)
    except OSError as exc:
        raise LandmarkError(f"The prepared demo in {repo} could not be laid out under {into}: {exc}") from exc
    return real / INDEXES, real / CHECKPOINTS


def materialise(snapshot: Path, dest: Path) -> Path:
    """`dest` holding every file of a Hub cache snapshot as a real file (a hard link to its blob, or a copy across
    file systems); made once per commit, atomically (a temp folder, then a rename), earlier commits removed."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in sorted(snapshot.rglob("*")):
        if path.is_dir():
            continue
        target = tmp / path.relative_to(snapshot)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(os.path.realpath(path), target)
        except OSError:
            shutil.copy2(path, target)
    try:
        tmp.rename(dest)
    except OSError:  # another process laid out the same commit first
        shutil.rmtree(tmp, ignore_errors=True)
    for old in dest.parent.iterdir():
        if old != dest and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return dest
