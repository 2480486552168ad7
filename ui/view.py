"""One gallery as every tab shows it: its engine, one map layer per encoder, and the helpers the tabs share."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import gradio as gr
import numpy as np

from search import config
from search.errors import LandmarkError
from search.models.encoders import REGISTRY
from search.photos.images import placeholder
from search.private.visitor import private_url
from search.retrieval.rank import fold_near_identical
from search.serving.engine import Hit, SearchEngine
from search.serving.results_export import result_rows, rows_csv, rows_json
from search.storage import atomic_path
from search.study import store as study_store
from search.study.compute import knn
from ui.figures import (
    UNCALIBRATED_PRIVATE,
    GalleryMap,
    broken_thumbnails_warning,
    calibration_figure,
    gallery_items,
    metrics_row,
    metrics_summary,
    reliability_figure,
    unreliable_note,
    verdict,
)
from ui.mapview import file_url


def load_study(engine: SearchEngine) -> dict | None:
    """The study of the engine's indexes (saved, or computed now when missing or stale); None when it cannot be
    had, which only hides the Study tab's figures."""
    try:
        return study_store.ensure(engine.index_root, {n: b.index for n, b in engine.backends.items()},
                                  log=lambda s: print(s, flush=True))
    except (LandmarkError, OSError, ValueError) as exc:
        print(f"The study of {engine.index_root} is unavailable: {exc}", flush=True)
        return None


def agreement_of(study: dict, a: str, b: str, items: list[dict]) -> np.ndarray | None:
    """Each of encoder a's rows' k-NN Jaccard with encoder b (NaN for a photo the other index lacks)."""
    pair = study["agreement"].get(f"{a}|{b}") or study["agreement"].get(f"{b}|{a}")
    if pair is None:
        return None
    by_path = dict(zip(study["photos"], pair["per_photo"]))
    return np.array([by_path.get(it["path"], np.nan) for it in items], dtype=np.float64)


class GalleryView:
    """The landmark gallery or one visitor's private gallery, with what is precomputed for display.

    A private gallery's files are never handed to Gradio (which would copy them into its shared cache): they go out
    as URLs of the app's private route, absolute under `base_url` where a Gradio component needs one."""

    def __init__(self, engine: SearchEngine, work_dir: Path = config.APP_WORK_DIR, private: bool = False,
                 private_root: Path | None = None, base_url: str = ""):
        self.engine = engine
        self.work_dir = Path(work_dir)
        self.private = private
        self.base_url = base_url.rstrip("/")
        self.url_of = (lambda p: private_url(private_root, p)) if private else file_url
        self.study = load_study(engine)
        title = "t-SNE of your photos under {n} ({c} photos)" if private else "t-SNE of the {n} gallery ({c} images)"
        self.maps = {n: GalleryMap(b.index, title.format(n=n, c=len(b.index.items)) + self.faithfulness(n),
                                   self.url_of) for n, b in engine.backends.items()}
        self._agreement_layers: dict[tuple[str, str], str] = {}
        self._neighbours: dict[tuple[str, int], np.ndarray] = {}
        self.layer_urls = {n: self.url_of(m.write(self.work_dir / "maps")) for n, m in self.maps.items()}
        self.missing_thumb = self.work_dir / "maps" / "thumbnail-missing.jpg"
        if not self.missing_thumb.exists():
            with atomic_path(self.missing_thumb) as tmp:
                placeholder("thumbnail missing: rebuild the index").save(tmp, format="JPEG")

    def faithfulness(self, encoder: str, short: bool = False) -> str:
        """What a map's title adds: how much of what the map suggests is true (from the study)."""
        m = ((self.study or {}).get("maps") or {}).get(encoder)
        if not m:
            return ""
        if short:
            return (f"<br><span style='font-size:11px'>trustworthiness {m['trustworthiness']:.2f} · "
                    f"{m['knn_preserved']:.0%} 10-NN kept</span>")
        return (f"<br><span style='font-size:11px'>map faithfulness: trustworthiness {m['trustworthiness']:.2f}, "
                f"{m['knn_preserved']:.0%} of each photo's 10 nearest neighbours kept"
                + ("" if m["trust_points"] == m["points"] else f" (trustworthiness on {m['trust_points']:,} photos)")
                + "</span>")

    def neighbours(self, encoder: str, k: int = config.STUDY.k) -> np.ndarray:
        """(N, k) rows of each gallery photo's k nearest photos under `encoder`, computed once, then kept."""
        if (encoder, k) not in self._neighbours:
            self._neighbours[(encoder, k)] = knn(self.engine.backend(encoder).index.ranked_vectors, k)
        return self._neighbours[(encoder, k)]

    def agreement_layer(self, a: str, b: str) -> str | None:
        """The URL of encoder a's map coloured by each photo's k-NN agreement with encoder b (written once)."""
        if (a, b) not in self._agreement_layers:
            values = agreement_of(self.study, a, b, self.engine.backends[a].index.items) if self.study else None
            if values is None:
                return None
            index = self.engine.backends[a].index
            layer = GalleryMap(index, f"{a} map, coloured by agreement with {b}", self.url_of,
                               colour_by=(f"J({a}, {b})", values))
            self._agreement_layers[(a, b)] = self.url_of(layer.write(self.work_dir / "maps"))
        return self._agreement_layers[(a, b)]

    def gallery(self, encoder: str, hits: list[Hit], in_all: set[str] = frozenset(),
                compared: int = 3) -> list[tuple[str, str]]:
        """Gallery items (`in_all`: the photos all `compared` encoders returned); a missing or corrupt thumbnail
        shows a placeholder and a warning naming the fix."""
        warning = broken_thumbnails_warning(hits, encoder)
        if warning:
            gr.Warning(warning)
        return [(self.image(p), c) for p, c in gallery_items(hits, in_all, self.missing_thumb, by_path=self.private,
                                                              compared=compared)]

    def image(self, path: Path | str) -> str:
        """What a Gradio image component gets for a file: its path, or a private gallery's absolute private URL."""
        return f"{self.base_url}/{self.url_of(Path(path))}" if self.private else str(path)

    def downloads(self, stem: str, hits_by_encoder: dict[str, list[Hit]]) -> list[str]:
        """The results as a CSV and a JSON file to download: paths for the landmark gallery, private URLs (inside
        the visitor's gallery, never in Gradio's shared cache) for a private one; none for no results."""
        rows = result_rows(hits_by_encoder)
        if not rows:
            return []
        folder = self.work_dir / "downloads" / uuid.uuid4().hex
        files = []
        for suffix, body in (("csv", rows_csv(rows)), ("json", rows_json(rows))):
            path = folder / f"{stem}.{suffix}"
            with atomic_path(path) as tmp:
                Path(tmp).write_text(body, encoding="utf-8")
            files.append(self.image(path))
        return files

    def keep_private(self, picture) -> str:
        """Save an image derived from a visitor's photos inside their gallery (not Gradio's shared cache); its URL."""
        path = self.work_dir / "derived" / f"{uuid.uuid4().hex}.jpg"
        with atomic_path(path) as tmp:
            picture.convert("RGB").save(tmp, format="JPEG", quality=90)
        return self.image(path)

    def label(self, name: str) -> str:
        """The encoder's display name, or why it cannot be used."""
        if name in self.engine.backends:
            return self.engine.backends[name].encoder.label
        return f"{name} — unavailable"

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) of every encoder, for a radio."""
        return [(self.label(n), n) for n in REGISTRY]

    def info(self, name: str) -> str:
        """Markdown: what the encoder is, how well it retrieves, or why it cannot be used."""
        spec = REGISTRY[name]
        if name not in self.engine.backends:
            return f"**{spec.title}** — {spec.description}\n\n⚠️ Unavailable: {self.engine.unavailable.get(name)}"
        b = self.engine.backends[name]
        if self.private:
            return (f"**{b.encoder.label}** — {spec.description}\n\nYour photos have no landmark labels, so there is "
                    "no retrieval score here: judge by eye, or compare the encoders side by side.")
        return (f"**{b.encoder.label}** — {spec.description}\n\n"
                f"How well does it retrieve? {metrics_summary(b.index.eval_report())}")

    def check(self, encoder: str, top_k: float) -> int:
        """k as a whole number, once the encoder is known and loaded; else a message for the page."""
        if encoder not in REGISTRY:
            raise gr.Error(f"Unknown encoder {encoder!r}; choose one of {', '.join(REGISTRY)}.")
        if encoder not in self.engine.backends:
            raise gr.Error(f"The {encoder} encoder is unavailable: {self.engine.unavailable.get(encoder)}")
        try:
            return int(top_k)
        except (TypeError, ValueError) as exc:
            raise gr.Error(f"top-k must be a whole number (got {top_k!r}).") from exc

    def search_depth(self, k: int) -> int:
        """How many hits to fetch for k results: more in a private gallery, whose near-identical photos fold."""
        return min(config.TOP_K_MAX, k * config.NEAR_IDENTICAL_DEPTH) if self.private else k

    def fold(self, encoder: str, hits: list[Hit], k: int) -> list[Hit]:
        """A private gallery's near-identical photos (a burst) as one result with their count, the first k; the
        landmark gallery's results as they are."""
        if not self.private or not hits:
            return hits[:k]
        groups = fold_near_identical(self._untrained_vectors(encoder, [h.path for h in hits]))[:k]
        return [dataclasses.replace(hits[g[0]], rank=r + 1, near_identical=len(g) - 1) for r, g in enumerate(groups)]

    def _untrained_vectors(self, encoder: str, paths: list[str]):
        """The photos' vectors under an untrained encoder of this gallery when there is one (an ImageNet network sees
        near-copies as near-copies; one trained on the landmarks maps a whole landmark close together), else under
        `encoder`."""
        judge = next((n for n in self.engine.backends if n in REGISTRY and not REGISTRY[n].trained), encoder)
        index = self.engine.backend(judge).index
        return index.embeddings[[index.row_of(p) for p in paths]]

    def verdict(self, hits: list[Hit], encoder: str | None = None, compact: bool = False) -> str:
        """One line on whether the best hit is a match, at this encoder's own threshold (`compact`: in a column
        headed by the encoder, as on Compare)."""
        if self.private or encoder not in self.engine.backends:
            return verdict(hits, UNCALIBRATED_PRIVATE if self.private else None)
        b = self.engine.backends[encoder]
        return verdict(hits, None, unreliable_note(b.encoder.label, b.index.eval_report(), compact))

    def row_of(self, encoder: str, path: str | None) -> int | None:
        """A gallery photo's row in the encoder's index (None for no photo)."""
        return self.engine.gallery_photo(encoder, path)["row"] if path else None

    def metrics_table(self) -> list[list]:
        """One row of retrieval and open-set figures per encoder."""
        return [metrics_row(n, self.engine.backends[n].index.eval_report()
                            if n in self.engine.backends else None) for n in REGISTRY]

    def calibration_plot(self):
        """The distance-only calibration curves, or None when no encoder has one."""
        curves = {b.encoder.label: b.index.calibration for b in self.engine.backends.values() if b.index.calibration}
        return calibration_figure(curves) if curves else None

    def reliability_plot(self):
        """The open-set confidence's reliability diagram, or None before the open-set evaluation."""
        return reliability_figure({b.encoder.label: b.index.eval_report() for b in self.engine.backends.values()})
