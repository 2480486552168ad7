"""The scratch CNN's training augmentation, split where each part is cheapest: the random resized crop per photo on
its small uint8 tensor (torchvision v2), then the flip, the colour jitter and the normalisation once per batch, each
image with its own random draws (on the GPU where there is one)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms import v2

from search import config
from search.models.networks import IMAGENET_MEAN, IMAGENET_STD


def hue_matrices(turns: torch.Tensor) -> torch.Tensor:
    """(N,) hue shifts in turns -> (N, 3, 3) RGB rotations about the grey axis (Rodrigues' formula)."""
    theta = turns.float().cpu() * 2 * math.pi
    u = torch.full((3,), 1 / math.sqrt(3))
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    return cos * torch.eye(3) + sin * cross + (1 - cos) * torch.outer(u, u)


@dataclass(frozen=True)
class JitterDraw:
    """One batch's random colour jitter: each image's four factors, (N,) each, and the order of the four steps."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    order: tuple[int, ...]


def draw_jitter(n: int, cfg: config.ScratchAugment = config.ScratchAugment()) -> JitterDraw:
    """Factors for `n` images from the ranges of `cfg` (torch's global generator), and a random step order."""
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.empty(n).uniform_(lo, hi)

    b, c, s = (uniform(1 - a, 1 + a) for a in (cfg.brightness, cfg.contrast, cfg.saturation))
    return JitterDraw(b, c, s, uniform(-cfg.hue, cfg.hue), tuple(torch.randperm(4).tolist()))


GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def twist_matrices(draw: JitterDraw, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The draw's four steps, in its order, composed into one affine colour map per image: (N, 3, 3) and (N, 3), so
    that colour -> A @ colour + b. `mean` (N, 3) is each image's mean colour, which contrast blends towards (after
    the steps before it: every step is affine, so the mean moves with the map)."""
    n = len(mean)
    eye, grey = torch.eye(3).expand(n, 3, 3), torch.tensor(GREY)
    a, b = eye.clone(), torch.zeros(n, 3)
    mean = mean.float().cpu()
    for step in draw.order:
        shift = torch.zeros(n, 3)
        if step == 0:  # brightness: a blend with black
            m = draw.brightness.view(-1, 1, 1) * eye
        elif step == 1:  # contrast: a blend with the image's mean grey, where the steps so far have moved it
            c = draw.contrast.view(-1, 1)
            m = c.view(-1, 1, 1) * eye
            shift = ((1 - c) * ((torch.bmm(a, mean[..., None])[..., 0] + b) @ grey)[:, None]).expand(n, 3)
        elif step == 2:  # saturation: a blend with each pixel's grey
            f = draw.saturation.view(-1, 1, 1)
            m = f * eye + (1 - f) * torch.outer(torch.ones(3), grey)
        else:
            m = hue_matrices(draw.hue)
        a, b = torch.bmm(m, a), torch.bmm(m, b[..., None])[..., 0] + shift
    return a, b


def colour_jitter(x: torch.Tensor, draw: JitterDraw) -> torch.Tensor:
    """A batch (N, 3, H, W) of floats in [0, 1] with each image's brightness, contrast, saturation and hue moved by
    its own factors, in the draw's order: the four steps as one affine colour map per image (`twist_matrices`),
    applied in one matrix product and clamped once, as DALI's `color_twist` does. Brightness, contrast and
    saturation are torchvision's blends (with black, the mean grey and the grey image); they differ from its
    ColorJitter only where torchvision clamps between two steps (a colour pushed past white and pulled back). Hue is
    a rotation of each colour about the grey axis, a linear map, where torchvision shifts the hue in HSV: over a
    batch of 128-px images the HSV round trip costs 0.79 ms per image, a quarter of a training step, and the rotation
    0.04 ms (measured on this machine). Both keep grey and turn the hue the same way by about the same amount; pixel
    by pixel they differ (HSV keeps each pixel's largest and smallest channel) by about as much as the shift itself
    (on the development photos at a shift of 0.05, a mean absolute difference of 0.019 against a change of 0.020).
    The composed map costs one pass over the batch where the four steps one by one cost about fifteen (measured:
    1.25 against 8.94 ms for a batch of 32)."""
    a, b = twist_matrices(draw, x.mean(dim=(-2, -1)))
    a, b = a.to(x.device, x.dtype), b.to(x.device, x.dtype)
    return torch.baddbmm(b[..., None], a, x.flatten(2)).view_as(x).clamp_(0, 1)


class BatchColourJitter(nn.Module):
    """ColorJitter over a batch, every image with its own factors (see `colour_jitter`): a factor shared by the whole
    batch would be undone, for brightness and contrast, by the first batch norm."""

    def __init__(self, cfg: config.ScratchAugment = config.ScratchAugment()):
        super().__init__()
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return colour_jitter(x, draw_jitter(len(x), self.cfg))


class ResizedCrop:
    """torchvision v2's RandomResizedCrop of one image to a uint8 tensor, called through its own parameter draw and
    the functional crop (measured: about half the per-photo cost of the transform's generic dispatch)."""

    def __init__(self, size: int, scale: tuple[float, float]):
        self.crop = v2.RandomResizedCrop(size, scale=scale, antialias=True)

    def __call__(self, img) -> torch.Tensor:
        img = v2.functional.to_image(img)
        params = self.crop.make_params([img])
        return v2.functional.resized_crop(img, **params, size=self.crop.size, antialias=True).as_subclass(torch.Tensor)


def batch_flip(x: torch.Tensor) -> torch.Tensor:
    """Each image of a batch mirrored left-right with probability 1/2 (RandomHorizontalFlip, image by image)."""
    flip = (torch.rand(len(x)) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


@dataclass(frozen=True)
class Augment:
    """A training augmentation in two parts: `photo` runs on each photo in the loader, `batch` on each stacked
    batch in the training loop."""

    photo: Callable
    batch: Callable


def scratch_augment(cfg: config.ScratchAugment = config.ScratchAugment()) -> Augment:
    """The scratch CNN's augmentation: a random resized crop to uint8 per photo, then per batch a flip, the colour
    jitter and the normalisation, each image with its own draws."""
    photo = ResizedCrop(config.SCRATCH_IMAGE_SIZE, cfg.crop_scale)
    batch = v2.Compose([batch_flip, v2.ToDtype(torch.float32, scale=True), BatchColourJitter(cfg),
                        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return Augment(photo, batch)
