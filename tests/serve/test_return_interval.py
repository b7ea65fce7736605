"""`serve`'s one extension to SiliconFlow's rerank request: the opt-in ``return_interval``.

Asked for, each result carries ``interval`` = the artifact's split-conformal bounds of the API
score around its calibrated score (what ``load_calibrator(...).interval`` gives for the same
raw score); not asked for, the response is SiliconFlow's exactly. Bad values, a coverage the
artifact does not hold and an artifact fitted before intervals existed are 400s checked before
the model runs. (The reference server and the fake refuse the field: tests/reference,
tests/api/test_conformance.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.inference import load_calibrator
from pipeline.scorers.base import QueryGroup
from pipeline.serve.app import interval_coverage
from pipeline.wire import RequestError
from tests.serve.test_serve import DOCS, QUERY, SERVED, fitted, local_scorer, post, served  # noqa: F401

LEGACY = Path(__file__).resolve().parents[1] / "support" / "legacy_artifacts"


def refusal(value, calibrator) -> RequestError:
    with pytest.raises(RequestError) as info:
        interval_coverage(value, calibrator)
    return info.value


@pytest.mark.parametrize("value", [None, False])
def test_no_interval_unless_asked(value):
    assert interval_coverage(value, calibrator=None) is None  # the calibrator is not even looked at


@pytest.mark.parametrize("value", ["yes", 1, 0, 1.0, -0.5, [0.9], {"coverage": 0.9}])
def test_a_value_that_is_neither_a_flag_nor_a_coverage_is_a_400(value):
    exc = refusal(value, calibrator=None)
    assert (exc.status, exc.code) == (400, 20015)
    assert str(exc) == "return_interval must be true, false or a coverage in (0, 1) such as 0.9"


@pytest.mark.parametrize("kind", ["single", "fused"])
def test_an_artifact_from_before_intervals_answers_a_400_that_says_to_refit(kind):
    exc = refusal(True, load_calibrator(LEGACY / kind, allow_mismatch=True))
    assert (exc.status, exc.code) == (400, 20015)
    assert "carries no per-score intervals" in str(exc) and "python -m pipeline fit" in str(exc)
    assert str(LEGACY) not in str(exc)  # the server's paths stay on the server


pytestmark_slow = pytest.mark.slow


def score_request(**extra) -> dict:
    return {"model": SERVED, "query": QUERY, "documents": DOCS, **extra}


@pytestmark_slow
@pytest.mark.parametrize(("asked", "coverage"), [(True, 0.9), (0.9, 0.9), (0.85, 0.9), (0.5, 0.5), (0.99, 0.99)])
def test_each_result_carries_the_artifacts_interval_at_the_stored_coverage(
    served,  # noqa: F811
    fitted,  # noqa: F811
    local_scorer,  # noqa: F811
    asked,
    coverage,
):
    response = post(served, score_request(return_interval=asked, top_n=3))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    cal = load_calibrator(fitted)
    raw = local_scorer.score([QueryGroup(QUERY, DOCS)])[0]
    lower, upper = cal.interval(raw, coverage=coverage)
    assert len(results) == 3
    for r in results:
        i = r["index"]
        assert set(r) == {"index", "relevance_score", "interval"}
        assert r["interval"]["coverage"] == coverage  # the stored one used: never less than asked
        np.testing.assert_allclose([r["interval"]["lower"], r["interval"]["upper"]], [lower[i], upper[i]], atol=1e-6)
        assert r["interval"]["lower"] <= r["interval"]["upper"]


@pytestmark_slow
def test_wider_coverage_never_narrows_the_interval(served):  # noqa: F811
    widths = []
    for coverage in (0.5, 0.8, 0.9, 0.95):
        results = post(served, score_request(return_interval=coverage)).json()["results"]
        by_index = {r["index"]: r["interval"] for r in results}
        widths.append([by_index[i]["upper"] - by_index[i]["lower"] for i in range(len(DOCS))])
    assert np.all(np.diff(np.array(widths), axis=0) >= -1e-12)


@pytestmark_slow
@pytest.mark.parametrize("off", [{}, {"return_interval": False}, {"return_interval": None}])
def test_without_it_the_response_is_siliconflows_exactly(served, off):  # noqa: F811
    plain = post(served, score_request(return_documents=True)).json()
    asked_off = post(served, score_request(return_documents=True, **off)).json()
    plain.pop("id"), asked_off.pop("id")
    assert asked_off == plain
    assert all(set(r) == {"index", "relevance_score", "document"} for r in plain["results"])


@pytestmark_slow
@pytest.mark.parametrize(("value", "needle"), [
    ("0.9", "return_interval must be true, false or a coverage"),
    (0.999, "coverage 0.999 is above the largest this artifact holds (0.99)"),
])  # fmt: skip
def test_a_bad_return_interval_is_a_400_in_the_apis_error_shape(served, value, needle):  # noqa: F811
    response = post(served, score_request(return_interval=value))
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"code", "message", "data"} and error["code"] == 20015 and needle in error["message"]


@pytestmark_slow
def test_ready_lists_the_coverages_a_request_can_ask_for(served):  # noqa: F811
    import httpx

    body = httpx.get(served.url + "/ready").json()
    assert body["interval_coverages"] == [0.5, 0.8, 0.9, 0.95, 0.99]
