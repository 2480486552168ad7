"""Query expansion (alpha-QE with database-side augmentation): a hand-worked example, the index that stores its
augmented gallery, and an encoders file that asks for it wrongly."""

from __future__ import annotations

import numpy as np
import pytest

from search.models.encoder_file import EncoderFileError, read_encoder_file
from search.retrieval.expansion import QueryExpansion, ranked
from search.retrieval.rank import Searcher


def _unit(*rows: list[float]) -> np.ndarray:
    x = np.array(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alpha_qe_with_dba_on_a_hand_worked_example():
    # three gallery vectors in the plane: a at 0 degrees, b at 60, c at 180
    g = _unit([1, 0], [0.5, np.sqrt(3) / 2], [-1, 0])
    qe = QueryExpansion(k=1, alpha=2.0)
    aug = qe.augment(g)
    # a's nearest other is b (cos 0.5): a + 0.5**2 b = (1.125, 0.2165); c's nearest is b (cos -0.5, clipped to 0): c
    np.testing.assert_allclose(aug[0], np.array([1.125, np.sqrt(3) / 8]) / np.hypot(1.125, np.sqrt(3) / 8), atol=1e-6)
    np.testing.assert_allclose(aug[2], [-1, 0], atol=1e-6)
    # b's nearest other is a: b + 0.25 a, unit
    b = np.array([0.5 + 0.25, np.sqrt(3) / 2])
    np.testing.assert_allclose(aug[1], b / np.linalg.norm(b), atol=1e-6)
    # a query at 100 degrees: first round finds b' (the augmented b), the query moves towards it
    q = _unit([np.cos(np.radians(100)), np.sin(np.radians(100))])
    first = np.array([[1]])
    s = float(q[0] @ aug[1])
    expected = q[0] + s ** 2 * aug[1]
    np.testing.assert_allclose(qe.expand(q, aug, first)[0], expected / np.linalg.norm(expected), atol=1e-6)
    # the searcher over the stored augmented gallery gives what ranking from scratch gives: one extra product
    idx, dist = Searcher(aug, expansion=qe).search(q, 3)
    idx2, dist2 = ranked(q, g, 3, qe)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_allclose(dist, dist2, atol=1e-6)


@pytest.mark.parametrize(("body", "said"), [
    ('query_expansion = "dba"', "query_expansion 'dba' is not one of aqe"),
    ('query_expansion = "aqe"\nqe_k = 0', "qe_k must be a whole number of at least 1 (got 0)"),
    ('query_expansion = "aqe"\nqe_alpha = "three"', "qe_alpha must be a number from 0 to 100 (got 'three')"),
    ("qe_k = 3", "qe_k and qe_alpha need query_expansion = \"aqe\""),
])
def test_a_bad_query_expansion_is_one_clear_line(tmp_path, body, said):
    f = tmp_path / "encoders.toml"
    f.write_text(f'[pretrained_qe]\nrole = "frozen"\n{body}\n')
    with pytest.raises(EncoderFileError) as err:
        read_encoder_file(f)
    assert said in str(err.value) and "\n" not in str(err.value) and "[pretrained_qe]" in str(err.value)


def test_an_encoders_file_asks_for_query_expansion_with_its_options(tmp_path):
    f = tmp_path / "encoders.toml"
    f.write_text('[pretrained]\nrole = "frozen"\n\n[pretrained_qe]\nrole = "frozen"\nquery_expansion = "aqe"\n'
                 'qe_k = 3\nqe_alpha = 2\n')
    plain, qe = read_encoder_file(f)
    assert plain.expansion is None
    assert dict(qe.expansion) == {"kind": "aqe", "k": 3, "alpha": 2.0}
