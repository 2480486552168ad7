"""Encoders: shapes and norms, the shared trunk, the VGG16 trunk and its offline fallback."""

import urllib.error
import warnings

import numpy as np
import pytest
import torch

from search import config
from search.errors import WeightsUnavailableError
from search.models.encoders import REGISTRY, EncoderStore, ScratchNet, arch_dict, build_scratch, scratch_transform
from search.models.trunks import OFFLINE_TRUNK, TrunkFallbackWarning
from search.storage import save_torch
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


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _reference_vgg_preprocess(im) -> torch.Tensor:
    """The VGG16 ImageNet recipe written out: shorter side to 256 (bilinear), centre 224 crop, ImageNet mean/std."""
    from torchvision.transforms import functional as TF

    w, h = im.size
    short, long = min(w, h), max(w, h)
    new_long = int(256 * long / short)  # torchvision truncates the long side
    im = im.resize((256, new_long) if w == short else (new_long, 256), resample=2)  # 2 = PIL bilinear
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = TF.center_crop(x, [224, 224])
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


def test_vgg16_preprocessing_is_the_imagenet_recipe(vgg_weights, trained):
    from torchvision import models

    enc = EncoderStore(trained, weights=vgg_weights).load("pretrained", trunk="vgg16")
    preset = models.VGG16_Weights.IMAGENET1K_V1.transforms()
    rng = np.random.default_rng(3)
    for size in [(640, 480), (300, 500), (224, 224), (1000, 260)]:
        im = synthetic_image(int(rng.integers(0, 3)), rng, size=size)
        ours = enc.transform(im)
        assert ours.shape == (3, 224, 224)
        assert torch.allclose(ours, preset(im), atol=1e-5)
        assert torch.allclose(ours, _reference_vgg_preprocess(im), atol=1e-5)


def test_vgg16_pretrained_is_fc7_computed_by_hand(vgg_weights, trained, images):
    store = EncoderStore(trained, weights=vgg_weights)
    enc = store.load("pretrained", trunk="vgg16")
    assert enc.label == "pretrained - VGG16"
    out = enc.encode(images[:3])
    assert out.shape == (3, 4096)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # fc7 after its ReLU, by hand from the named layers of torchvision's VGG16: conv stack, 7x7 average pool,
    # fc6 (Linear 25088 -> 4096), ReLU, fc7 (Linear 4096 -> 4096), ReLU; dropout is the identity in eval mode.
    from torchvision import models

    ref = models.vgg16()
    ref.load_state_dict(torch.load(vgg_weights, weights_only=True))
    ref.eval()
    fc6, fc7 = ref.classifier[0], ref.classifier[3]
    assert (fc6.in_features, fc6.out_features, fc7.out_features) == (25088, 4096, 4096)
    x = torch.stack([_reference_vgg_preprocess(im) for im in images[:3]])
    with torch.no_grad():
        pooled = torch.nn.functional.adaptive_avg_pool2d(ref.features(x), (7, 7)).flatten(1)
        h7 = torch.relu(fc7(torch.relu(fc6(pooled))))
    expected = torch.nn.functional.normalize(h7).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert (out >= 0).all()


def test_vgg16_is_built_from_its_weights_without_a_random_initialisation_first(vgg_weights, trained, monkeypatch):
    """138M random numbers drawn only to be overwritten cost a second at every start of an app serving VGG16."""
    drawn = []

    def counted(real):
        def init(*args, **kwargs):
            tensor = args[0] if args else kwargs["tensor"]
            drawn.append(0 if tensor.is_meta else tensor.numel())
            return real(*args, **kwargs)
        return init

    for name in ("kaiming_normal_", "normal_", "constant_"):  # what torchvision's VGG.__init__ draws with
        monkeypatch.setattr(torch.nn.init, name, counted(getattr(torch.nn.init, name)))
    enc = EncoderStore(trained, weights=vgg_weights).load("pretrained", trunk="vgg16")
    assert sum(drawn) == 0
    state = torch.load(vgg_weights, weights_only=True)
    params = {k.replace("fc67.", "classifier."): p for k, p in enc.trunk.named_parameters()}
    assert params.keys() == state.keys() - {"classifier.6.weight", "classifier.6.bias"}  # up to fc7
    assert all(torch.equal(p, state[k]) and not p.requires_grad for k, p in params.items())


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


def test_a_scratch_checkpoint_from_before_pool_first_loads_as_it_was_trained(tmp_path, images):
    """A checkpoint written before the architecture had `pool_first` batch-normalised before every pool: it is
    built that way, with its weights, and embeds as the network it was trained as."""
    torch.manual_seed(0)
    before = config.ScratchConfig(pool_first=0)
    net = ScratchNet(len(CLASSES), before)
    with torch.no_grad():  # running statistics that are not the identity, so the order of pool and norm shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.uniform_(-1.5, 1.5)
    net.eval()
    arch = arch_dict(before)
    del arch["pool_first"]  # as those checkpoints were written
    save_torch({"encoder": "scratch", "state_dict": net.state_dict(), "classes": CLASSES, "arch": arch},
               tmp_path / "scratch.pt")
    enc = build_scratch(REGISTRY["scratch"], tmp_path / "scratch.pt", None)
    x = torch.stack([scratch_transform()(im) for im in images])
    with torch.no_grad():
        want = torch.nn.functional.normalize(net.embed(x), dim=1).numpy()
    np.testing.assert_allclose(enc.encode(images), want, atol=1e-5)
