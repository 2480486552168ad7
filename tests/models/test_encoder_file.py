"""The encoders file: the default is the seed's three exactly as before; a user's file is read in order; whatever is
wrong in one is one line, from the library, a script (--encoders) and the environment (LANDMARK_ENCODERS) alike."""

from __future__ import annotations

import pytest

from search.models import encoders as registry
from search.models.encoder_file import EncoderFileError, read_encoder_file
from search.models.encoders import REGISTRY, use_encoders
from tests.conftest import IN_PROCESS, run_cli


def test_the_default_file_is_the_seed_three_with_their_names_files_and_texts():
    assert list(REGISTRY) == ["scratch", "pretrained", "transfer"]
    assert [s.role for s in REGISTRY.values()] == ["scratch", "frozen", "transfer"]
    assert [s.checkpoint for s in REGISTRY.values()] == ["scratch.pt", None, "transfer_head.pt"]
    assert [s.title for s in REGISTRY.values()] == ["Scratch CNN", "Pretrained ImageNet CNN", "Transfer learning"]
    assert all(s.trunk is None and s.epochs in (30, None) for s in REGISTRY.values())
    assert registry.trainable() == ("scratch", "transfer")


def test_a_users_file_is_read_in_its_order(tmp_path, restore_registry):
    path = tmp_path / "mine.toml"
    path.write_text('[lite2]\nlabel = "EfficientNet-Lite2"\nrole = "frozen"\ntrunk = "efficientnet_lite2"\n\n'
                    '[lite2_head]\nrole = "transfer"\ntrunk = "efficientnet_lite2"\nepochs = 5\n\n'
                    '[mine]\nrole = "scratch"\ndescription = "my own CNN"\n')
    assert use_encoders(path) == path.resolve()
    assert list(REGISTRY) == ["lite2", "lite2_head", "mine"]
    assert REGISTRY["lite2"].title == "EfficientNet-Lite2" and REGISTRY["lite2_head"].checkpoint == "lite2_head_head.pt"
    assert REGISTRY["lite2_head"].epochs == 5 and REGISTRY["mine"].description == "my own CNN"
    assert registry.trainable() == ("lite2_head", "mine")


@pytest.mark.parametrize("text, says", [
    ("", "lists no encoder"),
    ("[a]\nrole = 'frozen'\n[a]\nrole = 'frozen'\n", "is not valid TOML"),
    ("[A-B]\nrole = 'frozen'\n", "[A-B] is not an encoder name"),
    ("[a]\nrole = 'frozn'\n", "[a] role 'frozn' is not one of scratch, frozen, transfer."),
    ("[a]\nrole = 'frozen'\ntrunc = 'vgg16'\n", "[a] has unknown keys trunc"),
    ("[a]\nrole = 'scratch'\ntrunk = 'vgg16'\n", "[a] is a scratch CNN: it has no trunk"),
    ("[a]\nrole = 'frozen'\nepochs = 3\n", "[a] epochs must be a whole number of at least 1, for a trained role."),
    ("[a]\nrole = 'transfer'\nepochs = 0\n", "[a] epochs must be"),
    ("[a]\nrole = 'frozen'\nlabel = ''\n", "[a] label must be a non-empty string."),
    ("a = 1\n", "a must be a table"),
    ("[a]\nrole = 'frozen'\ntrunk = 'torchvision:resnet18'\nweights = 'x.pt'\n"
     "[b]\nrole = 'transfer'\ntrunk = 'torchvision:resnet18'\nweights = 'y.pt'\n", "with different weights"),
])
def test_a_wrong_file_is_one_line_and_leaves_the_registry_as_it_was(tmp_path, restore_registry, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(EncoderFileError) as caught:
        use_encoders(path)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert list(REGISTRY) == ["scratch", "pretrained", "transfer"]


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(EncoderFileError, match="No encoders file at"):
        read_encoder_file(tmp_path / "nowhere.toml")


def test_scripts_take_the_file_from_the_flag_or_the_environment(tmp_path, restore_registry, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[a]\nrole = 'frozn'\n")
    r = run_cli("scripts/build_index.py", "--encoders", bad, "--encoder", "a")
    assert r.returncode == 2 and r.stderr.strip() == f"error: {bad.resolve()}: [a] role 'frozn' is not one of " \
                                                     "scratch, frozen, transfer."
    good = tmp_path / "good.toml"
    good.write_text("[lite2]\nrole = 'frozen'\ntrunk = 'efficientnet_lite2'\n")
    r = run_cli("scripts/train.py", "--encoders", good, "--encoder", "scratch")
    assert r.returncode == 2 and "invalid choice: 'scratch'" in r.stderr  # not an encoder of that file
    for script, extra, says in (("scripts/study.py", [], "holds 0 loadable index(es)"),
                                ("scripts/publish.py", ["--repo", "a/b"], "holds no index that loads")):
        r = run_cli(script, "--encoders", good, "--index-dir", tmp_path / "nowhere", *extra)  # every script: the flag
        assert r.returncode == 2 and says in r.stderr, r.stderr
    monkeypatch.setenv("LANDMARK_ENCODERS", str(good))
    r = run_cli("scripts/query.py", "--encoder", "pretrained", "--image", "x.jpg")
    assert r.returncode == 2 and "invalid choice: 'pretrained'" in r.stderr and "lite2" in r.stderr


def test_an_encoder_without_an_index_loads_on_the_default_trunk_not_another_encoders_own(tmp_path, dataset, trained,
                                                                                        restore_registry):
    """Private galleries use every encoder: one whose index is missing is loaded on the default trunk, even when the
    only encoder served runs on a trunk of its own."""
    from search.indexing.runner import build_index
    from search.models.encoders import EncoderStore
    from search.serving.engine import SearchEngine
    from ui.site import Site

    path = tmp_path / "mine.toml"
    path.write_text('[lite2]\nrole = "frozen"\ntrunk = "efficientnet_lite2"\n\n[pretrained]\nrole = "frozen"\n')
    use_encoders(path)
    build_index(EncoderStore(trained).load("lite2"), dataset, "train", tmp_path / "idx", IN_PROCESS)
    engine = SearchEngine(tmp_path / "idx", trained)
    assert list(engine.backends) == ["lite2"]
    site = Site(engine, tmp_path / "work")
    assert site.encoders()["pretrained"].trunk_name != "efficientnet_lite2"
