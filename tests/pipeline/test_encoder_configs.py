"""Encoders as configuration, end to end on generated data: a two-encoder and a five-encoder file (the default three
run through the rest of the suite), each prepared with one command, then served: the API lists exactly the
configured names, every one searches, Compare compares a chosen subset, and the study pairs them all."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest

from search.models.encoder_file import DEFAULT_FILE
from tests.conftest import free_port, make_dataset, run_cli, synthetic_image

pytestmark = pytest.mark.slow

TWO = """
[pretrained]
role = "frozen"
trunk = "efficientnet_lite0"

[lite2]
label = "EfficientNet-Lite2"
role = "frozen"
trunk = "efficientnet_lite2"

[pretrained_qe]
role = "frozen"
trunk = "efficientnet_lite0"
query_expansion = "aqe"
qe_k = 2

[missing]
role = "frozen"
trunk = "file:/nowhere/model.pt"
"""

FIVE = """
[scratch]
role = "scratch"

[pretrained]
role = "frozen"

[transfer]
role = "transfer"

[lite2]
label = "EfficientNet-Lite2"
role = "frozen"
trunk = "efficientnet_lite2"

[lite2_transfer]
label = "EfficientNet-Lite2 + landmark head"
role = "transfer"
trunk = "efficientnet_lite2"
"""


@pytest.mark.parametrize("text, names, compared", [
    (TWO, ["pretrained", "lite2", "pretrained_qe", "missing"], ["pretrained", "lite2", "pretrained_qe"]),
    (DEFAULT_FILE.read_text(), ["scratch", "pretrained", "transfer"], ["scratch", "transfer"]),
    (FIVE, ["scratch", "pretrained", "transfer", "lite2", "lite2_transfer"], ["transfer", "lite2", "lite2_transfer"]),
], ids=["two-a-recipe-and-a-missing-one", "default-three", "five"])
def test_a_configured_set_of_encoders_is_prepared_served_compared_and_studied(tmp_path, restore_registry, text,
                                                                              names, compared):
    """`missing` names a model file that is not there: reported in the summary and skipped, never half-built; the
    app starts with the rest and says why it is unavailable."""
    from gradio_client import Client, handle_file

    import app
    from search.serving.engine import SearchEngine

    file = tmp_path / "encoders.toml"
    file.write_text(text)
    data = make_dataset(tmp_path / "src", n_train=4, n_test=2)
    epochs = [f"--{n}-epochs" for n in names if n in ("scratch", "transfer", "lite2_transfer")]  # 2 each: quick
    r = run_cli("scripts/prepare_demo.py", "--encoders", file, "--from-dir", data, "--data-dir", tmp_path / "data",
                "--index-dir", tmp_path / "indexes", "--checkpoint-dir", tmp_path / "checkpoints",
                "--trunk", "efficientnet_lite0", *[a for flag in epochs for a in (flag, "2")])
    ready = [n for n in names if n != "missing"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(ready)} of {len(names)} encoders ready" in r.stdout, r.stdout[-3000:]
    for name in names:
        assert (tmp_path / "indexes" / name / "manifest.json").is_file() == (name in ready)
    if "missing" in names:
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith("missing "))
        assert "failed: file:/nowhere/model.pt: no such file /nowhere/model.pt." in line
        assert not (tmp_path / "indexes" / "missing").exists()
    if "pretrained_qe" in names:  # the same trunk searched with query expansion: its augmented gallery stored
        manifest = json.loads((tmp_path / "indexes" / "pretrained_qe" / "manifest.json").read_text())
        assert manifest["query_expansion"] == {"kind": "aqe", "k": 2, "alpha": 3.0}
        assert "augmented.npy" in manifest["files"] and manifest["label"].endswith("+ query expansion")
        assert "ci95" in json.loads((tmp_path / "indexes" / "pretrained_qe" / "eval.json").read_text())

    port = free_port()
    demo = app.launch(SearchEngine(tmp_path / "indexes", tmp_path / "checkpoints"), "127.0.0.1", port,
                      work_dir=tmp_path / "work", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        encoder = next(p for p in api["/search"]["parameters"] if p["parameter_name"] == "encoder")
        assert encoder["type"]["enum"] == names  # exactly the configured names, in order
        photo = tmp_path / "q.jpg"
        synthetic_image(1, np.random.default_rng(3)).save(photo)
        for name in ready:
            result = json.loads(client.predict(handle_file(str(photo)), name, 3, api_name="/search_json"))
            assert result["encoder"] == name and len(result["hits"]) == 3
        out = client.predict(handle_file(str(photo)), 4, "", compared, api_name="/compare_encoders")
        galleries, agreement = out[:len(names)], out[3 * len(names)]
        for name, gallery in zip(names, galleries):
            assert (len(gallery) == 4) == (name in compared), name
        for a, b in combinations(compared, 2):
            assert f"{a} ∩ {b}" in agreement
        assert f"returned by all {len(compared)}" in agreement
        study = json.loads(client.predict(api_name="/study"))
        assert set(study["agreement"]) == {f"{a}|{b}" for a, b in combinations(ready, 2)}
        if "missing" in names:
            with pytest.raises(Exception, match="The missing encoder is unavailable: No index at"):
                client.predict(handle_file(str(photo)), "missing", 3, api_name="/search_json")
    finally:
        demo.close()
