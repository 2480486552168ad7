"""The codebase's shape, checked: serving loads nothing of training, and what the code before the subpackages wrote
(indexes and checkpoints) loads unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from search.index import load_index
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from search.serving.engine import SearchEngine
from tests.conftest import CLASSES, ROOT, synthetic_image

TRAINING_SIDE = ("search.models.training", "search.models.augment", "search.photos.decode_cache",
                 "search.models.malloc", "search.evaluation.open_set", "search.evaluation.closed_set")


@pytest.mark.slow
def test_the_app_imports_nothing_of_training():
    code = ("import sys, json, app; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('search.', 'sklearn')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                       check=True).stdout)
    assert "search.serving.engine" in loaded and "search.private.galleries" in loaded  # it did load the app
    assert not set(TRAINING_SIDE) & set(loaded), set(TRAINING_SIDE) & set(loaded)
    assert "sklearn" not in loaded  # scikit-learn fits calibrations, maps and studies; serving only reads them


IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys
before, opened = dict(os.environ), []
sys.addaudithook(lambda e, a: e == "open" and isinstance(a[0], str) and a[0].endswith(".toml") and opened.append(a[0]))
import search, ui
names = [m.name for p in (search, ui) for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")]
for name in names:
    importlib.import_module(name)
import app
print(json.dumps({"modules": len(names), "opened": opened,
                  "changed": sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))}))
"""


@pytest.mark.slow
def test_importing_the_code_reads_no_encoders_file_and_writes_no_environment():
    """The encoders file is read at the entry points (use_encoders), never as a side effect of an import, and no
    module sets an environment variable when imported."""
    env = {k: v for k, v in os.environ.items() if k != "LANDMARK_ENCODERS"}
    r = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["modules"] > 50 and out["opened"] == [] and out["changed"] == [], out


# What the code before the subpackages (7f939ac, the flat search/ package) wrote: two checkpoints and three indexes of
# generated photos (its make.py says how, and how to make them again).
BEFORE_SUBPACKAGES = ROOT / "tests" / "fixtures" / "before_subpackages"


def test_indexes_and_checkpoints_written_before_the_subpackages_load_unchanged(tmp_path):
    """Today's code loads and searches the checkpoints and indexes the code before the move wrote (the on-disk format
    did not change)."""
    ckpt, root = tmp_path / "ckpt", tmp_path / "idx"
    shutil.copytree(BEFORE_SUBPACKAGES / "checkpoints", ckpt)
    shutil.copytree(BEFORE_SUBPACKAGES / "indexes", root)
    store = EncoderStore(ckpt)
    for name in ("scratch", "pretrained", "transfer"):
        index = load_index(root / name, store.load(name, trunk=None if name == "scratch" else OFFLINE_TRUNK))
        assert index.manifest["count"] == len(CLASSES) * 6 and index.embeddings.shape[0] == len(CLASSES) * 6
    engine = SearchEngine(root, ckpt)
    assert set(engine.backends) == {"scratch", "pretrained", "transfer"}, engine.unavailable
    photo = synthetic_image(1, np.random.default_rng(5))
    assert all(len(engine.search(n, photo, 3)) == 3 for n in engine.backends)


def test_the_library_has_a_few_top_level_modules_and_its_flows_as_folders():
    top = sorted(p.name for p in (ROOT / "search").glob("*.py"))
    folders = sorted(p.name for p in (ROOT / "search").iterdir() if (p / "__init__.py").is_file())
    assert len(top) <= 8, top
    assert {"photos", "models", "indexing", "retrieval", "serving", "evaluation", "study", "private",
            "pipeline"} <= set(folders)
