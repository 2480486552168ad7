"""The scratch CNN's batched training augmentation and its network's block order."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from search import config
from search.models.augment import JitterDraw, batch_flip, colour_jitter, draw_jitter, hue_matrices, scratch_augment
from search.models.networks import ScratchNet
from tests.conftest import synthetic_image


def _photo(seed: int = 0) -> torch.Tensor:
    """A generated photo as floats in [0, 1], (3, 96, 128)."""
    img = synthetic_image(seed % 3, np.random.default_rng(seed))
    return v2.functional.to_dtype(v2.functional.pil_to_tensor(img), torch.float32, scale=True)


def test_every_image_of_a_batch_gets_its_own_jitter():
    torch.manual_seed(0)
    batch = _photo().expand(8, -1, -1, -1).clone()  # eight copies of one photo
    out = scratch_augment().batch((batch * 255).to(torch.uint8))
    assert out.shape == batch.shape and out.dtype == torch.float32
    means = out.mean(dim=(1, 2, 3))
    assert len({round(m, 4) for m in means.tolist()}) == 8  # a factor shared by the batch would give one mean
    draw = draw_jitter(1000)
    for factors, amount in ((draw.brightness, 0.3), (draw.contrast, 0.3), (draw.saturation, 0.3)):
        assert factors.min() >= 1 - amount and factors.max() <= 1 + amount and factors.std() > 0.15
    assert draw.hue.abs().max() <= 0.05 and sorted(draw.order) == [0, 1, 2, 3]


def test_the_batch_flip_mirrors_some_images_and_leaves_the_others():
    torch.manual_seed(0)
    photo = (_photo() * 255).to(torch.uint8)
    out = batch_flip(photo.expand(16, -1, -1, -1).clone())
    mirrored = [torch.equal(o, photo.flip(-1)) for o in out]
    assert all(m or torch.equal(o, photo) for m, o in zip(mirrored, out))
    assert 0 < sum(mirrored) < 16


def test_brightness_contrast_and_saturation_are_torchvisions_image_by_image():
    torch.manual_seed(1)
    batch = torch.stack([_photo(i) for i in range(4)])
    draw = draw_jitter(4)
    ones, F = torch.ones(4), v2.functional
    alone = {0: (JitterDraw(draw.brightness, ones, ones, torch.zeros(4), (0,)), F.adjust_brightness, draw.brightness),
             1: (JitterDraw(ones, draw.contrast, ones, torch.zeros(4), (1,)), F.adjust_contrast, draw.contrast),
             2: (JitterDraw(ones, ones, draw.saturation, torch.zeros(4), (2,)), F.adjust_saturation, draw.saturation)}
    for one, theirs, factors in alone.values():
        out = colour_jitter(batch.clone(), one)
        for i in range(4):
            assert torch.allclose(out[i], theirs(batch[i], factors[i].item()), atol=1e-5)


def test_the_four_steps_in_one_map_equal_them_one_after_another_in_the_drawn_order():
    """Where no step pushes a colour out of [0, 1] (photos in mid-grey), the composed map is the four steps applied
    one by one: torchvision's three blends and the hue rotation, in the draw's order (contrast blending towards the
    mean grey the steps before it left)."""
    F = v2.functional
    batch = torch.stack([0.35 + 0.25 * _photo(i) for i in range(6)])
    for seed in range(6):
        torch.manual_seed(seed)
        d = draw_jitter(6)
        out = colour_jitter(batch.clone(), d)
        for i in range(6):
            ref = batch[i]
            for step in d.order:
                if step == 3:
                    ref = (hue_matrices(d.hue[i:i + 1])[0] @ ref.flatten(1)).view_as(ref)
                else:
                    adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)[step]
                    ref = adjust(ref, (d.brightness, d.contrast, d.saturation)[step][i].item())
                assert 0 < ref.min() and ref.max() < 1  # nothing clamped on the way
            assert torch.allclose(out[i], ref, atol=1e-5), (seed, d.order)


def test_the_hue_rotation_keeps_grey_and_brightness_and_turns_like_torchvisions_hue():
    assert torch.allclose(hue_matrices(torch.zeros(1))[0], torch.eye(3), atol=1e-6)
    turns = torch.tensor([0.05, -0.05, 0.02])
    m = hue_matrices(turns)
    grey, colours = torch.full((3,), 0.4), torch.rand(50, 3)
    for k in range(3):
        assert torch.allclose(m[k] @ grey, grey, atol=1e-6)
        moved = (m[k] @ colours.T).T
        assert torch.allclose(moved.mean(1), colours.mean(1), atol=1e-6)  # the mean of R, G, B is kept
        assert torch.allclose(moved.norm(dim=1), colours.norm(dim=1), atol=1e-5)  # and the chroma: a rotation
    assert torch.allclose(m[0] @ m[1], torch.eye(3), atol=1e-6)  # +h then -h: back where it started
    for seed in range(3):
        photo = _photo(seed)
        for k, h in enumerate(turns.tolist()):
            draw = JitterDraw(torch.ones(1), torch.ones(1), torch.ones(1), turns[k:k + 1], (3,))
            ours = colour_jitter(photo[None].clone(), draw)[0]
            theirs = v2.functional.adjust_hue(photo, h)
            same = (ours - theirs).abs().mean()
            opposite = (ours - v2.functional.adjust_hue(photo, -h)).abs().mean()
            change, their_change = (ours - photo).abs().mean(), (theirs - photo).abs().mean()
            assert same < opposite * 0.6  # torchvision's direction
            assert 0.7 < change / their_change < 1.5  # and about its size


def test_the_photo_part_crops_and_flips_to_uint8_at_the_training_size():
    torch.manual_seed(0)
    photo = (_photo(2) * 255).to(torch.uint8)
    out = scratch_augment().photo(photo)
    side = config.SCRATCH_IMAGE_SIZE
    assert out.dtype == torch.uint8 and tuple(out.shape) == (3, side, side)


def _textbook(net: ScratchNet) -> nn.Sequential:
    """The same parameters with each block's ReLU before its max-pool: conv, batch norm, ReLU, max-pool (and in the
    first `pool_first` blocks, which normalise the pooled map, conv, max-pool, batch norm, ReLU)."""
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in net.features if isinstance(m, nn.BatchNorm2d)]
    blocks = []
    for k, (conv, bn) in enumerate(zip(convs, norms)):
        blocks += [conv, nn.MaxPool2d(2), bn, nn.ReLU()] if k < config.ScratchConfig().pool_first else \
            [conv, bn, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*blocks, net.features[-1], net.hidden, net.logits)


def test_pooling_before_the_relu_is_the_same_network_with_the_same_gradients():
    torch.manual_seed(0)
    net = ScratchNet(5).train()
    x = torch.randn(6, 3, config.SCRATCH_IMAGE_SIZE, config.SCRATCH_IMAGE_SIZE)
    torch.manual_seed(1)
    ours = net(x)
    grads = torch.autograd.grad(ours.sum(), list(net.parameters()))
    torch.manual_seed(1)  # the same dropout masks
    ref = _textbook(net)(x)
    ref_grads = torch.autograd.grad(ref.sum(), list(net.parameters()))
    assert torch.allclose(ours, ref, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads))
    net.eval()
    maps = net.conv_maps(x)
    side = config.SCRATCH_IMAGE_SIZE // 8  # the last block's map, before its max-pool
    assert maps.shape[-2:] == (side, side) and maps.min() >= 0
    assert torch.allclose(net.embed_from_maps(maps), net.embed(x), atol=1e-5)
