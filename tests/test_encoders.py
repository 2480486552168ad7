"""Encoders: shapes and norms, the shared trunk, the VGG16 trunk and its offline fallback."""

import urllib.error
import warnings

import numpy as np
import pytest
import torch

from search.encoders import EncoderStore, ScratchNet
from search.errors import WeightsUnavailableError
from search.trunks import OFFLINE_TRUNK, TrunkFallbackWarning
from tests.conftest import CLASSES, synthetic_image


@pytest.fixture()
def images():
    rng = np.random.default_rng(1)
    return [synthetic_image(i % 3, rng) for i in range(5)]


@pytest.mark.parametrize("name,dim", [("scratch", 256), ("pretrained", 1280), ("transfer", 256)])
def test_offline_encoders_give_unit_vectors(trained, images, name, dim):
    enc = EncoderStore(trained).load(name, trunk=OFFLINE_TRUNK)
    out = enc.encode(images)
    assert out.shape == (5, dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert enc.dim == dim


def test_vgg16_pretrained_is_fc7(vgg_weights, trained, images):
    store = EncoderStore(trained, weights=vgg_weights)
    enc = store.load("pretrained", trunk="vgg16")
    assert enc.label == "pretrained - VGG16"
    out = enc.encode(images[:2])
    assert out.shape == (2, 4096)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # fc7 after its ReLU: the same as torchvision's classifier[:5] on the same weights, and non-negative.
    from torchvision import models

    ref = models.vgg16()
    ref.load_state_dict(torch.load(vgg_weights, weights_only=True))
    ref.eval()
    x = torch.stack([enc.transform(im) for im in images[:2]])
    with torch.no_grad():
        fc7 = ref.classifier[:5](torch.flatten(ref.avgpool(ref.features(x)), 1))
    np.testing.assert_allclose(out, torch.nn.functional.normalize(fc7).numpy(), atol=1e-4)
    assert (out >= 0).all()


def test_pretrained_and_transfer_share_one_trunk(trained):
    store = EncoderStore(trained)
    pre = store.load("pretrained", trunk=OFFLINE_TRUNK)
    tra = store.load("transfer", trunk=OFFLINE_TRUNK)
    assert pre.trunk is tra.trunk


def test_fallback_to_offline_trunk_is_labelled(monkeypatch, tmp_path, trained):
    monkeypatch.delenv("LANDMARK_VGG16_WEIGHTS", raising=False)
    monkeypatch.delenv("LANDMARK_TRUNK", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.warns(TrunkFallbackWarning, match="offline"):
        enc = EncoderStore(trained).load("pretrained")
    assert enc.trunk.name == OFFLINE_TRUNK
    assert enc.label == "pretrained - EfficientNet-Lite0 (offline)"
    # Asking for VGG16 by name never silently falls back.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WeightsUnavailableError, match="--weights"):
            EncoderStore(trained).load("pretrained", trunk="vgg16")


def test_missing_weights_file_is_a_clear_error(trained, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        EncoderStore(trained, weights=tmp_path / "nope.pth").load("pretrained", trunk="vgg16")


def test_transfer_head_refuses_other_trunk(trained, vgg_weights):
    with pytest.raises(WeightsUnavailableError, match="retrain"):
        EncoderStore(trained, weights=vgg_weights).load("transfer", trunk="vgg16")


def test_scratch_architecture_is_four_conv_blocks_and_three_fc():
    net = ScratchNet(len(CLASSES))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 4 and len(linears) == 3
    x = torch.randn(2, 3, 128, 128)
    assert net(x).shape == (2, len(CLASSES))
    assert net.embed(x).shape == (2, net.embed_dim)
