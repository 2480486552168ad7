"""Search results to take away: the ranked hits of one or several encoders as rows, CSV text and JSON text."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence

from search.serving.engine import Hit

COLUMNS = ("encoder", "rank", "path", "landmark", "distance", "p_same")


def result_rows(hits_by_encoder: Mapping[str, Sequence[Hit]]) -> list[dict]:
    """One row per hit, encoder by encoder in the given order, each in rank order."""
    return [{"encoder": name, "rank": h.rank, "path": h.path, "landmark": h.class_name,
             "distance": round(float(h.distance), 6), "p_same": h.p_same}
            for name, hits in hits_by_encoder.items() for h in hits]


def rows_csv(rows: Sequence[Mapping], columns: Sequence[str] = COLUMNS) -> str:
    """The rows as CSV text with a header (an unknown value is an empty cell)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in columns} for r in rows)
    return out.getvalue()


def rows_json(rows: Sequence[Mapping]) -> str:
    """The rows as a JSON array."""
    return json.dumps(list(rows), indent=1)
