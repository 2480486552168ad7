"""Why did this photo come back? Grad-CAM-style heatmaps of the similarity of two embeddings.

The similarity s = <e(query), e(hit)> of the two unit embeddings is differentiated with respect to each
image's last convolutional feature map A (for a transformer: its patch-token grid); each channel is weighted by its
mean gradient and the weighted sum, rectified, shows which regions of that image raise s. It needs nothing but the
encoder's `maps_and_embedding`, so it works alike for the scratch CNN, VGG16, EfficientNet-Lite and library trunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from search import config
from search.models.encoders import Encoder

# A perceptually ordered dark-blue -> cyan -> yellow -> red ramp for the heat (no matplotlib needed).
_RAMP = np.array([[48, 18, 59], [40, 120, 220], [30, 200, 180], [250, 220, 40], [240, 90, 20], [180, 10, 10]],
                 dtype=np.float64)


@dataclass(frozen=True)
class Explanation:
    """Two heatmaps in [0, 1] over what the encoder saw of each photo, and the pair's cosine similarity."""

    query_map: np.ndarray   # (h, w) float32
    hit_map: np.ndarray     # (h, w) float32
    similarity: float


def similarity_maps(encoder: Encoder, query: Image.Image, hit: Image.Image) -> Explanation:
    """Grad-CAM of the query-hit similarity on both photos' last conv feature maps."""
    batch = torch.stack([encoder.transform(query), encoder.transform(hit)])
    with torch.inference_mode(False), torch.enable_grad():
        maps, emb, to_grid = encoder.maps_and_embedding(batch)
        emb = F.normalize(emb.float(), dim=1)
        sim = (emb[0] * emb[1]).sum()
        (grad,) = torch.autograd.grad(sim, maps)
    maps, grad = to_grid(maps), to_grid(grad)
    weights = grad.float().mean(dim=(2, 3), keepdim=True)
    cams = F.relu((weights * maps.detach().float()).sum(dim=1)).cpu().numpy().astype(np.float32)
    cams = np.stack([c / c.max() if c.max() > 0 else c for c in cams])
    return Explanation(cams[0], cams[1], float(sim.detach()))


def view_box(transform, width: int, height: int) -> tuple[float, float, float, float]:
    """The region of a width x height photo that the encoder's resize + centre crop keeps (left, top, right, bottom)."""
    resize, crop = _resize_crop(transform)
    if resize is None or crop is None:
        return 0.0, 0.0, float(width), float(height)
    scale = resize / min(width, height)
    cw, ch = min(crop / scale, width), min(crop / scale, height)
    return (width - cw) / 2, (height - ch) / 2, (width + cw) / 2, (height + ch) / 2


def _resize_crop(transform) -> tuple[float | None, float | None]:
    """Shorter-side resize and square crop of a torchvision preset or a v2.Compose."""
    if hasattr(transform, "resize_size") and hasattr(transform, "crop_size"):  # weights.transforms()
        return float(transform.resize_size[0]), float(transform.crop_size[0])
    resize = crop = None
    for t in getattr(transform, "transforms", []):
        if isinstance(t, v2.Resize) and t.size is not None:
            resize = float(t.size[0] if isinstance(t.size, (list, tuple)) else t.size)
        elif isinstance(t, v2.CenterCrop):
            crop = float(t.size[0] if isinstance(t.size, (list, tuple)) else t.size)
    return resize, crop


def colorize(heat: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 colours on the ramp."""
    pos = np.clip(heat, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, transform, alpha: float = config.HEATMAP_ALPHA) -> Image.Image:
    """The photo at its own size with the heatmap blended over the region the encoder saw; the rest dimmed."""
    image = image.convert("RGB")
    left, top, right, bottom = (int(round(v)) for v in view_box(transform, *image.size))
    w, h = max(right - left, 1), max(bottom - top, 1)
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    heat_up = np.asarray(heat_img, dtype=np.float32) / 255.0
    base = np.asarray(image, dtype=np.float32)
    out = base * 0.45  # outside the crop: dimmed, the encoder never saw it
    region = base[top:top + h, left:left + w]
    a = alpha * (0.35 + 0.65 * heat_up[..., None])  # hot regions more opaque
    out[top:top + h, left:left + w] = region * (1 - a) + colorize(heat_up).astype(np.float32) * a
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))
