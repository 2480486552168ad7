"""Every sentence the app shows that is longer than a label: the intro, the tabs' explanations, the banners."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from search import config
from search.models.encoders import EncoderSpec
from search.retrieval import expansion
from search.retrieval.expansion import QueryExpansion
from search.serving.engine import SearchEngine
from search.study.compute import difference_sentence, listed
from ui import api

PREPARE_CMD = "python scripts/prepare_demo.py"
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def counted(n: int, noun: str = "encoders") -> str:
    """'the four encoders': the configured count in words (digits past ten)."""
    return f"the {NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} {noun}"


def intro(specs: Mapping[str, EncoderSpec]) -> str:
    """The page's header: what the app is for, naming the configured encoders."""
    listed = "; ".join(f"**{n}**, {ROLE_PHRASES[s.role]}" + (", searched with query expansion" if s.expansion else "")
                       for n, s in specs.items())
    return (f"# 🗺️ Landmark Lens\nReverse image search for landmark photos, built to **compare what "
            f"{counted(len(specs))} consider \"similar\"**: {listed}. Drop a photo (or click an example), pick an "
            "encoder, and see the closest gallery photos and where your photo lands on the map of the whole gallery.")


ROLE_PHRASES = {"scratch": "a small CNN trained from scratch on the landmark photos",
                "frozen": "a pretrained model used as it is",
                "transfer": "a frozen pretrained trunk with a head retrained on the landmarks"}


ROLE_SHORT = {"scratch": "trained from scratch", "frozen": "used as it is", "transfer": "head retrained"}


def compare_intro(specs: Mapping[str, EncoderSpec]) -> str:
    """What Compare shows, with the configured count."""
    return (f"One photo under the encoders side by side ({counted(len(specs))} configured; tick which): does each "
            "one match colour and mood, general content, or the landmark itself? Click a photo in any column to find "
            "it on every map.")


def study_intro(count: int) -> str:
    """The Study's heading and what it shows, with the count of encoders it compares."""
    return (f"### {counted(count).capitalize()} over the whole gallery\nSearch and Compare show one photo at a time. "
            "Here every gallery photo counts: whether the encoders give it the same nearest neighbours, which "
            "landmarks each one retrieves well (on the held-out test photos), how faithful each t-SNE map is, and what "
            "the numbers say about each encoder. Click a photo to see its neighbours and search from it.")


WHY_SIMILAR = ("**Why similar?** Warm colours mark the regions that raise this encoder's similarity between the two "
               "photos (Grad-CAM); dimmed edges were cropped away.")
MAP_HELP = "**Map** — hover a point to see its photo, click it to search from it."
NO_PHOTO = "Drop a photo first (or click one of the examples)."
NO_STUDY = ("No study yet: it compares at least two encoders' indexes of the same gallery, and is computed by "
            "`python scripts/study.py` (prepare_demo.py and evaluate.py run it).")
MAP_FAITH = ("t-SNE keeps neighbourhoods, not distances. *Trustworthiness* (scikit-learn, k = 10) is 1 when the map "
             "puts no photo near ones that are not its neighbours in the embedding; *10-NN kept* is the share of each "
             "photo's 10 embedding neighbours that are among its 10 neighbours on the map. Every map's title "
             "shows both.")


def missing_banner(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR) -> str:
    """Markdown saying which encoders cannot be used, and the one command that prepares everything."""
    if not engine.unavailable:
        return ""
    if not engine.backends:
        return (f"### ⚠️ No gallery index yet\nThis app needs precomputed indexes in `{engine.index_root}/`. "
                f"Prepare them with one command (it downloads the data when online; offline add "
                f"`--from-zip landmark_images.zip`):\n\n"
                f"`{PREPARE_CMD} --data-dir {data_dir} --index-dir {engine.index_root}`\n\n"
                f"**Or try the app right now with your own photos:** the **Your photos** tab builds a private gallery "
                f"from photos or a zip you drop, with every encoder this machine can load.\n\n"
                + "\n".join(f"- **{n}**: {why}" for n, why in engine.unavailable.items()))
    return "⚠️ " + " · ".join(f"**{n}** unavailable: {why}" for n, why in engine.unavailable.items())



NEAR_IDENTICAL_RULE = (f"Near-identical photos (a burst of shots) show as one result: on Search, a photo whose vector is "
                       f"at least {config.NEAR_IDENTICAL_COSINE:.2f} cosine-similar to a better-ranked result's is "
                       "folded into it, which says \"+N near-identical\".")


def mine_intro(limits: config.MyGalleryLimits = config.MY_GALLERY) -> str:
    """Markdown of the Your photos tab: what it does, and its caps."""
    return (f"### Search your own photos\nDrop photos (JPEG, PNG, WebP, HEIC/HEIF straight from a phone, AVIF, ...) "
            f"or a zip of them. If the zip has sub-folders, each one is a group and gets its own colour on the map. "
            f"The app builds a **private gallery** with every available encoder: thumbnails, embeddings and a t-SNE "
            f"map; then the **Search** and **Compare encoders** tabs work over it (switch with *Gallery* above).\n\n"
            f"Your gallery is yours alone: it lives in a folder of this session, its files are served only to this "
            f"browser, and it is deleted when you close the tab or {limits.ttl_seconds // 60} minutes after you last "
            f"used it. One gallery per browser: building a new one replaces your previous one. {NEAR_IDENTICAL_RULE} Caps: {limits.max_photos} photos, {limits.max_upload_bytes // 2**20} MB uploaded "
            f"({limits.max_unpacked_bytes // 2**20} MB unpacked), {config.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per photo.")



def built_note(status: str, several_encoders: bool, unavailable: dict[str, str]) -> str:
    """Markdown after a private build: what was built and where to go next."""
    compare = " or see how the encoders group them in **Compare encoders**" if several_encoders else ""
    missing = "".join(f"\n\n⚠️ {n} could not index them: {why}" for n, why in unavailable.items())
    return (f"✅ {status}\n\nThe *Gallery* above now shows **Your photos**: search them in the **Search** tab"
            f"{compare}.{missing}")


def no_gallery_yet(limits: config.MyGalleryLimits = config.MY_GALLERY) -> str:
    """The message when a session asks for its private gallery and has none."""
    return ("You have no gallery of your own yet (or it expired after "
            f"{limits.ttl_seconds // 60} minutes): build one in the Your photos tab.")


def encoder_table(specs: Mapping[str, EncoderSpec], engine: SearchEngine) -> str:
    """A Markdown table, one row per configured encoder: label, role, trunk and the embedding's measured dimension
    (from its loaded index; '-' for an encoder that is not loaded)."""
    rows = ["| encoder | label | role | trunk | embedding | search |", "|---|---|---|---|---|---|"]
    for name, s in specs.items():
        b = engine.backends.get(name)
        label = b.encoder.label if b else f"{s.title} (unavailable)"
        trunk = ("its own CNN" if not s.uses_trunk else b.encoder.trunk.label if b
                 else s.trunk or f"the default ({config.DEFAULT_TRUNK})")
        dim = f"{b.index.embeddings.shape[1]}-d" if b else "-"
        rows.append(f"| {name} | {label} | {s.role} ({ROLE_SHORT[s.role]}) | {trunk} | {dim} | "
                    f"{search_recipe(b.index.expansion if b else None, s.expansion)} |")
    return "\n".join(rows)


def expansion_text(specs: Mapping[str, EncoderSpec]) -> str:
    """How query expansion works, for the encoders configured with it (nothing when none is)."""
    with_qe = [n for n, s in specs.items() if s.expansion]
    if not with_qe:
        return ""
    verb = "searches" if len(with_qe) == 1 else "search"
    return (f" {listed(with_qe)} {verb} with *query expansion* (α-QE with "
            "database-side augmentation, as the revisited Oxford and Paris benchmarks do): each gallery vector is "
            "replaced, when the index is built, by the similarity-weighted mean of itself and its k nearest gallery "
            "vectors; your photo is searched once, replaced by the weighted mean of itself and its top k hits "
            "(weights: similarity to the power α), and searched again. The map of such an encoder shows its "
            "augmented gallery.")


def search_recipe(loaded: QueryExpansion | None, asked: tuple | None) -> str:
    """'alpha-QE + DBA (k=5, alpha=3)' for an encoder searched with query expansion (as its index records it, else as
    the encoders file asks), 'plain' otherwise."""
    qe = loaded or expansion.from_dict(dict(asked) if asked else None)
    return "plain" if qe is None else f"α-QE + DBA (k={qe.k}, α={float(qe.alpha):g})"


def fold_counts(specs: Mapping[str, EncoderSpec], cfg: config.OpenSetConfig = config.OPEN_SET) -> str:
    """'5 folds for pretrained and transfer, 3 folds for scratch': the folds each configured encoder is scored
    with."""
    by_count: dict[int, list[str]] = {}
    for name, s in specs.items():
        by_count.setdefault(cfg.scratch_folds if s.role == "scratch" else cfg.folds, []).append(name)
    return ", ".join(f"{n} folds for {listed(ns)}" for n, ns in sorted(by_count.items(), reverse=True))


def how_it_works(specs: Mapping[str, EncoderSpec], engine: SearchEngine) -> str:
    """The How it works text: the configured encoders, and the method with the numbers the code runs with."""
    trained = [n for n, s in specs.items() if s.trained]
    on_trunk = [n for n, s in specs.items() if s.role == "transfer"]
    cfg = config.OPEN_SET
    retrained = f" ({listed(trained)} with models trained without it too)" if trained else ""
    trunk_feature = (f" and, for {listed(on_trunk)}, the distance in its pretrained trunk's own space"
                     if on_trunk else "")
    both_spaces = f" (for {listed(on_trunk)}, of its vectors and its trunk's together)" if on_trunk else ""
    return f"""
**{counted(len(specs)).capitalize()}** turn every photo into a vector; similar photos have nearby vectors.

{encoder_table(specs, engine)}

**Search** is nearest-neighbour search by Euclidean distance on L2-normalised vectors (smaller *d* = more similar):
exact for galleries of up to {config.EXACT_SEARCH_LIMIT:,} photos, approximate past that (FAISS
{config.ANN_BACKEND}, its best {config.ANN_RERANK:,} candidates re-ranked exactly).{expansion_text(specs)}
**The map** is a t-SNE projection of each encoder's gallery vectors, computed once when the index is built. t-SNE
leaves a map's rotation and mirror arbitrary, so when the app loads the indexes it turns, mirrors, scales and shifts
every encoder's map onto their consensus (generalised Procrustes): a photo sits in about the same place under every
encoder unless that encoder moved it. Nothing inside a map changes, so each stays exactly as faithful to its encoder;
distances between far-apart clusters mean little on any t-SNE map. Your photo is placed at the distance-weighted mean
of its {config.MAP_NEIGHBOURS} nearest neighbours, and the top-k hits are ringed. Hover a point to see its photo; click it (or a result, then *Search with this photo*) to search from that photo
by its stored vector.

**Match confidence** ("94% same landmark") answers "does this hit show my photo's landmark?", and often the honest
answer is that the gallery does not hold it. So it is fitted with landmarks *left out*: the landmarks are split into
folds ({fold_counts(specs, cfg)}), each fold's test photos are searched against a gallery without that fold{retrained},
and a logistic regression learns P(same landmark) from a hit's distance, its margin to the nearest hit of another
landmark, how many of the top {cfg.k} show its landmark{trunk_feature}, and how far the photo lies
from the hit's landmark as a whole: each landmark is a Gaussian over up to {cfg.landmark_dims} principal axes of the
gallery{both_spaces}, all with one covariance, and the distance is taken relative to a Gaussian of the whole gallery
(the relative Mahalanobis distance), so a photo that differs from a landmark the way its own photos differ stays near
it. An isotonic curve then recalibrates its output,
one for the top hit and one for the hits below it, fitted on scores of folds the logistic was not fitted on, so that
"80%" means right about 80% of the time. Its figures are cross-validated over those folds, the recalibration nested
inside them: AUROC separating right top hits from absent landmarks, the share of absent landmarks called a match, GAP,
and the expected calibration error (ECE: how far "said" is from "right", averaged over {config.RELIABILITY_BINS} bins). Each
encoder calls a match only above its own threshold: the P (at least {config.CONFIDENT_P_SAME:.0%}) above which no more
than {config.MAX_FALSE_CONFIDENT:.0%} of absent landmarks came, chosen on held-out folds too. Below it, the page says
the landmark does not seem to be in the gallery; an encoder whose AUROC is under {config.RELIABLE_AUROC:.2f} says its
percentages cannot be trusted. The reliability diagram below shows, per encoder, what it said against how often it was
right (every scored query's P and outcome are in its index's `eval.json`, under `out_of_fold`).

**Why similar?** For a selected result, the similarity of the two embeddings is differentiated with respect to each
photo's last convolutional feature map; channels weighted by their mean gradient (Grad-CAM) show which regions raise
the similarity. The result's side is computed from its thumbnail.

**Metrics**: test-split photos are used as queries against the train-split gallery; P@k is the share of the top k
that show the same landmark, mAP@10 rewards putting the right landmark first.

**Your photos**: the same encoders index photos you drop into a private gallery (thumbnails, vectors, a t-SNE map
coloured by sub-folder); the *Gallery* radio switches every view to it. Nothing there is labelled, so there is no
calibrated confidence: captions show the raw distance. {NEAR_IDENTICAL_RULE}

**For programs and AI assistants**: the API ({API_LANDMARK}; see "Use via API" below; {API_MINE} for your own photos)
is also an MCP server at `/gradio_api/mcp/`.
"""


API_LANDMARK = ", ".join(f"`{n}`" for n in api.LANDMARK_GALLERY)
API_MINE = " and ".join(f"`{n}`" for n in api.YOUR_PHOTOS)

MORPH_HELP = ("Every photo travels from its place on encoder A's map to its place on B's (the maps share one frame, so "
              "what moves is what the two encoders see differently). Drag the slider, or play it there and back. "
              "Colour by landmark, or by how much each photo's 10 nearest neighbours change between A and B "
              "(the Study's Jaccard: dark = its neighbours change). Distances between far-apart clusters mean "
              "little on a t-SNE map: read who stays together, not how far a cluster travels.")

DOMINOES_HINT = ("*Click a photo above, or a point on the map, to see its neighbourhood: the photos both encoders "
                 "put among its 10 nearest, and those only one of them does.*")


def link_problem(reason: str) -> str:
    """The one message a link that cannot be opened gets."""
    return f"⚠️ **This link cannot be opened.** {reason}"


def differences(study: dict | None) -> str:
    """Whether the encoders' retrieval figures really differ: each pair, paired over the same test photos."""
    said = [difference_sentence(*pair.split("|"), metric, d[metric])
            for pair, d in ((study or {}).get("differences") or {}).items()
            for metric in ("precision@1", "mAP@10") if metric in d]
    if not said:
        return ""
    level = f"{config.BOOTSTRAP.level:.0%}"
    return ("**Are the differences real?** Each pair of encoders on the same test photos: the difference, its "
            f"{level} bootstrap interval ({config.BOOTSTRAP.resamples:,} resamples), and a paired sign-flip test "
            f"(real when p < {1 - config.BOOTSTRAP.level:.2f}).\n\n" + "\n".join(f"- {s}" for s in said))
