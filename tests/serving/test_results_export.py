"""Results to take away: the rows, the CSV and the JSON of ranked hits."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from search.serving.engine import Hit
from search.serving.results_export import COLUMNS, result_rows, rows_csv, rows_json


def _hit(rank: int, landmark: str, p: float | None) -> Hit:
    return Hit(rank, rank * 10, f"train/{landmark}/{rank}.jpg", landmark, 0.1 * rank, Path("t.jpg"), p)


def test_rows_keep_each_encoders_ranking_and_an_unknown_confidence_stays_unknown():
    hits = {"transfer": [_hit(1, "Eiffel Tower", 0.91), _hit(2, "Big Ben", 0.2)], "scratch": [_hit(1, "Big Ben", None)]}
    rows = result_rows(hits)
    assert [(r["encoder"], r["rank"], r["landmark"]) for r in rows] == [
        ("transfer", 1, "Eiffel Tower"), ("transfer", 2, "Big Ben"), ("scratch", 1, "Big Ben")]
    table = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert list(table[0]) == list(COLUMNS) and table[2]["p_same"] == "" and float(table[0]["p_same"]) == 0.91
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    assert json.loads(rows_json(rows)) == rows and json.loads(rows_json(rows))[2]["p_same"] is None
    assert result_rows({}) == [] and rows_csv([]) == ",".join(COLUMNS) + "\n"
