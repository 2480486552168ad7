"""The prepared demo (indexes and checkpoints) from a Hugging Face Hub model repo: published by
`scripts/publish.py`, fetched by the app at start with `huggingface_hub.snapshot_download` into the Hub cache (a
restart with a warm cache, or `HF_HUB_OFFLINE=1`, needs no network) and then verified as any index is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import LandmarkError

INDEXES, CHECKPOINTS = "indexes", "checkpoints"  # the repo's two folders, as prepare_demo.py writes them
# What is published and fetched: the three indexes, their thumbnails, examples and study, the two checkpoints (no
# caches, no fold models, no --gallery indexes).
PUBLISHED = (*(f"{INDEXES}/{d}/*" for d in ("scratch", "pretrained", "transfer", "thumbnails", "examples", "study")),
             f"{CHECKPOINTS}/scratch.pt", f"{CHECKPOINTS}/transfer_head.pt")


@dataclass(frozen=True)
class AssetRepo:
    """A Hub model repo holding a prepared demo, at a revision (a branch, tag or commit; None: main)."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "AssetRepo":
        """'OWNER/NAME' or 'OWNER/NAME@REVISION'."""
        repo, _, revision = spec.strip().partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise LandmarkError(f"{spec!r} is not a Hub repo: give OWNER/NAME or OWNER/NAME@REVISION.")
        return cls(repo, revision or None)

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def fetch(spec: str, endpoint: str | None = None, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(index dir, checkpoint dir) of the prepared demo in a Hub repo, downloaded or taken from the Hub cache;
    one clear line (a LandmarkError) when the repo, its revision or its files cannot be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    repo = AssetRepo.parse(spec)
    try:
        root = Path(snapshot_download(repo.repo_id, repo_type="model", revision=repo.revision,
                                      allow_patterns=list(PUBLISHED), endpoint=endpoint, cache_dir=cache_dir))
    except RevisionNotFoundError as exc:
        raise LandmarkError(f"The Hub repo {repo.repo_id} has no revision {repo.revision!r}: check "
                            f"{config.ASSETS_ENV} (or --assets).") from exc
    except RepositoryNotFoundError as exc:
        raise LandmarkError(f"No Hub model repo {repo.repo_id} (or it is private and no token is set): publish "
                            "one with scripts/publish.py, or check the name.") from exc
    except LocalEntryNotFoundError as exc:
        raise LandmarkError(f"{repo} is not in the Hub cache and the Hub cannot be reached (offline?): start once "
                            "online to fetch it.") from exc
    except (EntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise LandmarkError(f"The prepared demo in {repo} could not be fetched: {exc}") from exc
    if not (root / INDEXES).is_dir():
        raise LandmarkError(f"{repo} holds no {INDEXES}/ folder: publish it with scripts/publish.py --repo "
                            f"{repo.repo_id}.")
    return root / INDEXES, root / CHECKPOINTS
