"""Private galleries: a visitor's own photos, indexed with every available encoder into a folder of its own
under the app's work dir, bound to the visitor that built it, removed when its session ends or it expires."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.indexing.encode_stage import Vectors
from search.indexing.runner import build_indexes
from search.models.encoders import Encoder
from search.private.uploads import unpack
from search.private.visitor import inside_any, path_forms
from search.serving import gpu_calls
from search.serving.engine import SearchEngine
from search.study import store as study_store

PHOTOS_DIRNAME = "your photos"  # a flat upload's one class is named after it (map legend, captions)
Report = Callable[[float, str], None]  # (fraction done 0..1, what is happening), as build_indexes reports it


@dataclass
class PrivateGallery:
    """One visitor's gallery: its folder, who may read its files, the engine over its indexes."""

    token: str
    folder: Path
    owner: str
    session: str       # the browser session that built it (its tab)
    engine: SearchEngine
    photos: int
    groups: tuple[str, ...]
    skipped: int
    ignored: int
    seconds: float
    last_used: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        """One line: photos, groups, encoders, build time and photos/s (every encoder's pass included)."""
        kept = self.photos - self.skipped
        groups = f" in {len(self.groups)} groups ({', '.join(self.groups)})" if self.groups else ""
        extra = "".join([f"; {self.skipped} could not be decoded" if self.skipped else "",
                         f"; {self.ignored} other files ignored" if self.ignored else ""])
        return (f"Your gallery: {kept} photos{groups}, indexed with {', '.join(self.engine.backends)} in "
                f"{self.seconds:.1f} s ({kept / max(self.seconds, 1e-9):.1f} photos/s){extra}.")


class PrivateGalleries:
    """The live private galleries of one app process, keyed by an unguessable token."""

    def __init__(self, root: Path, encoders: Callable[[], dict[str, Encoder]],
                 limits: config.MyGalleryLimits = config.MY_GALLERY):
        self.root = Path(root)
        self.encoders = encoders
        self.limits = limits
        if self.root.exists():  # galleries of an earlier process: nothing can reach them any more
            shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, mode=0o700)
        self._lock = threading.Lock()
        self._live: dict[str, PrivateGallery] = {}
        self._building: dict[str, str] = {}  # token -> owner, while its build runs

    def build(self, owner: str, files: Sequence[Path | str], report: Report = lambda f, s: None,
              session: str = "") -> PrivateGallery:
        """Unpack an upload into a new private folder and index it with every available encoder."""
        if not owner:
            raise LandmarkError("A private gallery is bound to the visitor cookie this app sets, and this request "
                                f"carried none: load the app page first and send its cookies back "
                                f"({config.VISITOR_COOKIE}); gradio_client does this by itself.")
        self.refuse_private(files)
        self.sweep()
        with self._lock:
            if sum(o == owner for o in self._building.values()) >= self.limits.max_per_visitor:
                raise LandmarkError("Your previous gallery is still being built: wait for it to finish, then build "
                                    "again (a new gallery replaces your previous one).")
            # this visitor's oldest galleries make room first: they are replaced, not counted against the others
            own = sorted((g.last_used, t) for t, g in self._live.items() if g.owner == owner)
            kept = min(len(own), self.limits.max_per_visitor - 1)
            if len(self._live) - len(own) + len(self._building) + kept + 1 > self.limits.max_galleries:
                raise LandmarkError(f"The app is holding as many private galleries as it can "
                                    f"({self.limits.max_galleries}); try again in a few minutes.")
            token = secrets.token_hex(16)
            self._building[token] = owner
        folder = self.root / token
        started = time.perf_counter()
        try:
            folder.mkdir(mode=0o700)
            report(0.0, "unpacking the upload")
            unpacked = unpack(files, folder / PHOTOS_DIRNAME, self.limits)
            encoders = self.encoders()
            if not encoders:
                raise LandmarkError("No encoder can be loaded on this machine, so no gallery can be built.")
            # the models run through the GPU calls, a batch at a time: the progress moves between calls
            build_indexes(list(encoders.values()), unpacked.root, "all", folder / "index",
                          config.BuildConfig(workers=0, batch_size=gpu_calls.BUILD_BATCH), progress=report,
                          vectors=Vectors(embed=gpu_calls.batch_embedder(list(encoders.values()))))
            # The index needs only its thumbnails: the originals go now (less disk, less of the visitor's data kept).
            shutil.rmtree(unpacked.root, ignore_errors=True)
            engine = SearchEngine(folder / "index", names=tuple(encoders), encoders=encoders)
            study_store.ensure(folder / "index", {n: b.index for n, b in engine.backends.items()}, log=lambda s: None)
            skipped = next(iter(engine.backends.values())).index.manifest.get("skipped", 0)
            gallery = PrivateGallery(token, folder, owner, session, engine, unpacked.photos, unpacked.groups, skipped,
                                     unpacked.ignored, time.perf_counter() - started)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._building.pop(token, None)
        with self._lock:
            self._live[token] = gallery
            own = sorted((g.last_used, t) for t, g in self._live.items() if g.owner == owner and t != token)
        for _, old in own[:max(0, len(own) + 1 - self.limits.max_per_visitor)]:
            self.drop(old)  # replaced by the new one
        return gallery

    def is_private(self, path: Path | str) -> bool:
        """Whether a path lies inside the private galleries' folder, lexically or once symlinks are followed."""
        return inside_any(path, path_forms(self.root))

    def refuse_private(self, files: Sequence[Path | str]) -> None:
        """A file inside any private gallery is never an input (not even its owner's): refuse it by name."""
        for f in files:
            if self.is_private(f):
                raise LandmarkError(f"{Path(f).name} is a file of a private gallery on this server, not an upload: "
                                    "send the photo itself.")

    def get(self, token: str | None) -> PrivateGallery | None:
        """The live gallery of that token (its clock restarts), or None."""
        self.sweep()
        gallery = self._live.get(token or "")
        if gallery is not None:
            gallery.last_used = time.monotonic()
        return gallery

    def drop(self, token: str | None) -> None:
        """Forget a gallery and delete its folder."""
        with self._lock:
            gallery = self._live.pop(token or "", None)
        if gallery is not None:
            shutil.rmtree(gallery.folder, ignore_errors=True)

    def drop_session(self, session: str) -> list[str]:
        """A browser tab closed: delete the galleries it built; their tokens."""
        tokens = [t for t, g in list(self._live.items()) if session and g.session == session]
        for token in tokens:
            self.drop(token)
        return tokens

    def sweep(self, now: float | None = None) -> None:
        """Drop galleries unused for longer than the time limit."""
        now = time.monotonic() if now is None else now
        for token, gallery in list(self._live.items()):
            if now - gallery.last_used > self.limits.ttl_seconds:
                self.drop(token)

    def owner_of(self, path: Path) -> str | None:
        """The visitor a file under the root belongs to; None when no live gallery holds it."""
        try:
            token = Path(path).resolve().relative_to(self.root.resolve()).parts[0]
        except (ValueError, IndexError):
            return None
        gallery = self._live.get(token)
        return gallery.owner if gallery is not None else None
