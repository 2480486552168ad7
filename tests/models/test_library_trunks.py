"""Trunks from the libraries: a torchvision model, a timm model and a TorchScript file as the `pretrained` and
`transfer` trunks, on random weights (no weights can be downloaded here); the real download paths give one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.errors import BadIndexError, NoHeatmapError, WeightsUnavailableError
from search.index import load_index
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.models.trunks import load_trunk
from search.serving.engine import SearchEngine
from search.serving.explain import similarity_maps
from tests.conftest import FAST_TRAIN, IN_PROCESS, synthetic_image

RESNET = "torchvision:resnet18"
VIT = "timm:vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A random resnet18 state dict, as torchvision would load its ImageNet weights."""
    from torchvision import models

    path = tmp_path_factory.mktemp("resnet") / "resnet18-random.pt"
    torch.manual_seed(0)
    torch.save(models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def vit_weights(tmp_path_factory):
    """A timm ViT created with random weights, saved as a state dict."""
    import timm

    path = tmp_path_factory.mktemp("vit") / "vit-random.pt"
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).state_dict(), path)
    return path


def _photos(n: int = 2):
    rng = np.random.default_rng(7)
    return [synthetic_image(i % 3, rng) for i in range(n)]


@pytest.mark.parametrize("trunk_name, weights, dim, grid", [(RESNET, "resnet_weights", 512, (7, 7)),
                                                             (VIT, "vit_weights", 192, (14, 14))])
def test_a_library_trunk_serves_as_pretrained_and_transfer_with_its_own_preprocessing_and_heatmaps(
        request, dataset, tmp_path, trunk_name, weights, dim, grid):
    from search.models.training import train_transfer

    store = EncoderStore(tmp_path / "ckpt", request.getfixturevalue(weights))
    pretrained = store.load("pretrained", trunk=trunk_name)
    assert pretrained.trunk_name == trunk_name and pretrained.dim == dim
    assert pretrained.encode(_photos()).shape == (2, dim)
    train_transfer(dataset, tmp_path / "ckpt" / "transfer_head.pt", 2, store, FAST_TRAIN, trunk=trunk_name,
                   log=lambda *_: None)
    transfer = store.load("transfer", trunk=trunk_name)
    assert transfer.trunk is pretrained.trunk  # one forward pass for both
    root = tmp_path / "idx"
    for enc in (pretrained, transfer):
        index = build_index(enc, dataset, "train", root, IN_PROCESS)
        assert index.manifest["trunk"] == trunk_name and load_index(root / enc.name, enc).embeddings.shape[1] == enc.dim
    engine = SearchEngine(root, tmp_path / "ckpt", request.getfixturevalue(weights),
                          names=("pretrained", "transfer"))
    photo = "train/01.Blue_Circles/01_train_2.jpg"
    hits = engine.search("pretrained", __import__("PIL.Image").Image.open(dataset / photo), 3)
    assert hits[0].path == photo  # the photo itself, found first
    explanation = similarity_maps(transfer, *_photos())
    assert explanation.query_map.shape == grid and explanation.query_map.max() == 1.0


def test_an_index_built_by_one_trunk_refuses_another(dataset, tmp_path, resnet_weights):
    from torchvision import models

    root = tmp_path / "idx"
    build_index(EncoderStore(tmp_path, resnet_weights).load("pretrained", trunk=RESNET), dataset, "train", root,
                IN_PROCESS)
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    torch.save(models.resnet18(weights=None).state_dict(), other)
    with pytest.raises(BadIndexError, match="was built with weights"):  # same architecture, other weights
        load_index(root / "pretrained", EncoderStore(tmp_path, other).load("pretrained", trunk=RESNET))
    with pytest.raises(BadIndexError, match=f"was built with trunk {RESNET}, but the encoder uses efficientnet_lite0"):
        load_index(root / "pretrained", EncoderStore(tmp_path).load("pretrained", trunk="efficientnet_lite0"))


def test_a_torchscript_file_is_a_trunk_and_says_it_has_no_heatmap(tmp_path, resnet_weights):
    from torchvision import models

    net = models.resnet18(weights=None)
    net.load_state_dict(torch.load(resnet_weights, weights_only=True))
    net.fc = torch.nn.Identity()
    path = tmp_path / "mine.pt"
    torch.jit.trace(net.eval(), torch.zeros(1, 3, 224, 224)).save(str(path))
    enc = EncoderStore(tmp_path).load("pretrained", trunk=f"file:{path}")
    assert enc.encode(_photos()).shape == (2, 512) and "mine.pt" in enc.label
    with pytest.raises(NoHeatmapError, match="No heatmap for mine.pt .your model.: the model computes no spatial map"):
        similarity_maps(enc, *_photos())


def test_the_efficientnet_lite_wheels_are_trunks_at_their_own_resolution():
    for variant, size in ((1, 240), (2, 260)):
        trunk = load_trunk(f"efficientnet_lite{variant}")
        assert trunk.dim == 1280 and trunk.label == f"EfficientNet-Lite{variant} (offline)"
        assert trunk.transform(synthetic_image(0, np.random.default_rng(0))).shape == (3, size, size)


def test_weights_that_cannot_be_downloaded_fail_with_one_line_naming_model_source_and_remedy(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache: torchvision must download
    with pytest.raises(WeightsUnavailableError) as caught:
        load_trunk("torchvision:resnet18", allow_fallback=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("torchvision:resnet18: the weights ResNet18_Weights.IMAGENET1K_V1")
    assert "https://download.pytorch.org/models/resnet18" in message and "give a local state dict" in message

    # the Hub client offline (as here, without its minute of retries)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailableError) as caught:
        load_trunk("timm:resnet18", allow_fallback=False)
    message = str(caught.value)
    assert "\n" not in message and "timm:resnet18: the pretrained weights could not be downloaded from the Hugging " \
                                   "Face Hub" in message and "give a local state dict" in message


@pytest.mark.parametrize("name, says", [("torchvision:no_such_net", "torchvision has no classification model"),
                                        ("torchvision:resnet18:NOPE", "with weights 'NOPE'"),
                                        ("timm:no_such_net", "timm:no_such_net"),
                                        ("file:/nowhere/model.pt", "no such file"),
                                        ("keras:resnet", "Unknown trunk 'keras:resnet'")])
def test_a_trunk_that_does_not_exist_is_one_line(name, says):
    with pytest.raises(WeightsUnavailableError, match=says):
        load_trunk(name, allow_fallback=False)
