"""One number, one rounding: every output that shows a hit's match confidence shows the same value, formatted the
same way, whatever the machine's floating point makes of the raw probability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search.serving.engine import SearchEngine
from search.serving.results_export import result_rows, rows_csv, rows_json
from ui.figures import caption, hit_details, hits_json, verdict

# Raw P just under a rounding boundary: formatted raw 0.614996 reads "61%", its published 4-decimal 0.615 "62%".
RAW = [0.614996, 0.954996, 0.499996, 0.004996]


@pytest.fixture()
def engine(built, trained, monkeypatch):
    engine = SearchEngine(built, trained, names=["pretrained"])
    monkeypatch.setattr(SearchEngine, "_confidence", staticmethod(lambda *args: np.array(RAW)))
    return engine


def test_every_output_shows_the_same_confidence(engine):
    vector = engine.backends["pretrained"].index.embeddings[0]
    hits = engine.search_vector("pretrained", vector, len(RAW), row=0)
    published = [h["p_same"] for h in hits_json(hits)["hits"]]
    shown = [f"{p:.0%}" for p in published]  # how a program formats the API's number
    assert [caption(h).split(" · ")[2] for h in hits] == [f"{s} same landmark" for s in shown]
    assert [f"**{s}**" in hit_details(h, "pretrained") for h, s in zip(hits, shown)] == [True] * len(hits)
    assert shown[0] in verdict(hits)
    rows = result_rows({"pretrained": hits})
    assert [r["p_same"] for r in json.loads(rows_json(rows))] == published
    assert [float(line.split(",")[-1]) for line in rows_csv(rows).splitlines()[1:]] == published
    # the case that made the page and the API disagree: raw 0.614996 reads 61%, the published 0.615 reads 62%
    assert shown[:2] == ["62%", "96%"] and published[:2] == [0.615, 0.955]
