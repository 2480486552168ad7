"""Every sentence the app shows that is longer than a label: the intro, the tabs' explanations, the banners."""

from __future__ import annotations

from pathlib import Path

from search import config
from search.serving.engine import SearchEngine
from ui import api

PREPARE_CMD = "python scripts/prepare_demo.py"
INTRO = """# 🗺️ Landmark Lens
Reverse image search for landmark photos, built to **compare what three CNNs consider "similar"**:
a small CNN trained from scratch, an ImageNet CNN used as it is, and the same ImageNet CNN adapted to the
landmarks by transfer learning. Drop a photo (or click an example), pick an encoder, and see the closest
gallery photos and where your photo lands on the map of the whole gallery."""


WHY_SIMILAR = ("**Why similar?** Warm colours mark the regions that raise this encoder's similarity between the two "
               "photos (Grad-CAM); dimmed edges were cropped away.")
MAP_HELP = "**Map** — hover a point to see its photo, click it to search from it."
COMPARE_INTRO = ("One photo, three encoders side by side: does each one match colour and mood, general content, or the "
                 "landmark itself? Click a photo in any column to find it on all three maps.")
NO_PHOTO = "Drop a photo first (or click one of the examples)."
STUDY_INTRO = ("### The three encoders over the whole gallery\nSearch and Compare show one photo at a time. Here every "
               "gallery photo counts: whether the encoders give it the same nearest neighbours, which landmarks each "
               "one retrieves well (on the held-out test photos), how faithful each t-SNE map is, and what the "
               "numbers say about each encoder. Click a photo to see its neighbours and search from it.")
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



def mine_intro(limits: config.MyGalleryLimits = config.MY_GALLERY) -> str:
    """Markdown of the Your photos tab: what it does, and its caps."""
    return (f"### Search your own photos\nDrop photos (JPEG, PNG, WebP, HEIC/HEIF straight from a phone, AVIF, ...) "
            f"or a zip of them. If the zip has sub-folders, each one is a group and gets its own colour on the map. "
            f"The app builds a **private gallery** with every available encoder: thumbnails, embeddings and a t-SNE "
            f"map; then the **Search** and **Compare encoders** tabs work over it (switch with *Gallery* above).\n\n"
            f"Your gallery is yours alone: it lives in a folder of this session, its files are served only to this "
            f"browser, and it is deleted when you close the tab or {limits.ttl_seconds // 60} minutes after you last "
            f"used it. One gallery per browser: building a new one replaces your previous one. Caps: {limits.max_photos} photos, {limits.max_upload_bytes // 2**20} MB uploaded "
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


HOW_IT_WORKS = """
**Three encoders** turn every photo into a vector; similar photos have nearby vectors.

| encoder | what it is | embedding |
|---|---|---|
| scratch | 4 conv blocks + 3 fully connected layers, trained only on the landmark photos | hidden layer before the logits (256-d) |
| pretrained | an ImageNet CNN used as it is (VGG16; EfficientNet-Lite0 when VGG16 weights are unavailable offline) | VGG16 fc7 (4096-d) / pooled features (1280-d) |
| transfer | the same frozen ImageNet CNN with a new head trained on the landmark classes | head's hidden layer (256-d) |

**Search** is exact nearest-neighbour search by Euclidean distance on L2-normalised vectors (smaller *d* = more similar).
**The map** is a t-SNE projection of each encoder's gallery vectors, computed once when the index is built; your photo
is placed at the distance-weighted mean of its nearest neighbours, and the top-k hits are ringed. Hover a point to see
its photo; click it (or a result, then *Search with this photo*) to search from that photo by its stored vector.

**Match confidence** ("94% same landmark") answers "does this hit show my photo's landmark?", and often the honest
answer is that the gallery does not hold it. So it is fitted with landmarks *left out*: the landmarks are split into
three folds, each fold's test photos are searched against a gallery without that fold (scratch and transfer with
models trained without it too), and a logistic regression learns P(same landmark) from a hit's distance, its margin
to the nearest hit of another landmark, how many of the top 10 show its landmark and, for transfer, the distance in
its ImageNet trunk's own space. Its figures are cross-validated over the folds: AUROC separating right top hits from
absent landmarks, the share of absent landmarks called a match, GAP. Each encoder calls a match only above its own
threshold: the P (at least 50%) above which no more than 5% of absent landmarks came, chosen on held-out folds too.
Below it, the page says the landmark does not seem to be in the gallery; an encoder whose AUROC is under 0.75 says
its percentages cannot be trusted. The reliability diagram below shows, per encoder, what it said against how often it was right.

**Why similar?** For a selected result, the similarity of the two embeddings is differentiated with respect to each
photo's last convolutional feature map; channels weighted by their mean gradient (Grad-CAM) show which regions raise
the similarity. The result's side is computed from its thumbnail.

**Metrics**: test-split photos are used as queries against the train-split gallery; P@k is the share of the top k
that show the same landmark, mAP@10 rewards putting the right landmark first.

**Your photos**: the same encoders index photos you drop into a private gallery (thumbnails, vectors, a t-SNE map
coloured by sub-folder); the *Gallery* radio switches every view to it. Nothing there is labelled, so there is no
calibrated confidence: captions show the raw distance.

**For programs and AI assistants**: the API ({landmark}; see "Use via
API" below; {mine} for your own photos) is also an MCP server at `/gradio_api/mcp/`.
""".format(landmark=", ".join(f"`{n}`" for n in api.LANDMARK_GALLERY),
           mine=" and ".join(f"`{n}`" for n in api.YOUR_PHOTOS))

DOMINOES_HINT = ("*Click a photo above, or a point on the map, to see its neighbourhood: the photos both encoders "
                 "put among its 10 nearest, and those only one of them does.*")


def link_problem(reason: str) -> str:
    """The one message a link that cannot be opened gets."""
    return f"⚠️ **This link cannot be opened.** {reason}"
