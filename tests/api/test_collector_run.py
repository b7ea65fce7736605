"""collect_api, the loop that sends a plan and caches what comes back, against a scripted client:
every answer lands in the cache under its own pair, no more than api.concurrency requests are in
flight, a response that does not fit its request is refused before anything of it is cached, and
the first error stops the run as itself (not wrapped in an exception group)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.api.adapters import Usage
from pipeline.api.client import ScoreResult
from pipeline.api.collector import PairRequest, _first_error, collect_api
from pipeline.api.errors import FatalApiError, ResponseFormatError, RetriesExhausted
from pipeline.core.cache import ScoreCache, pair_key

HASH = "api-source"


@dataclass
class ScriptedClient:
    """Scores a document as len(document) + 0.5; ``answers`` overrides the scores (or raises) for a
    query. Each call yields to the event loop twice, so concurrent workers really overlap."""

    concurrency: int = 4
    answers: dict = field(default_factory=dict)
    where: str = "fake http://api.test/rerank"
    in_flight: int = 0
    most_in_flight: int = 0
    calls: list = field(default_factory=list)

    @property
    def cfg(self):
        return SimpleNamespace(concurrency=self.concurrency)

    async def score(self, query, documents):
        self.calls.append((query, tuple(documents)))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            answer = self.answers.get(query)
            if isinstance(answer, BaseException):
                raise answer
            scores = np.array([len(d) + 0.5 for d in documents] if answer is None else answer, dtype=np.float64)
            return ScoreResult(scores, Usage(), 0)
        finally:
            self.in_flight -= 1


def request(group: int, query: str, docs: list[str]) -> PairRequest:
    return PairRequest(group, tuple(range(len(docs))), query, tuple(docs), 0)


PLAN = [request(g, f"q{g}", [f"doc{g}-{'x' * j}" for j in range(g + 1)]) for g in range(6)]


def run(client, plan, cache, on_response=None):
    asyncio.run(collect_api(client, plan, cache, HASH, on_response))


def cached(cache: ScoreCache, plan) -> dict:
    keys = [pair_key(r.query, d) for r in plan for d in r.documents]
    return cache.get_many(HASH, keys)


@pytest.fixture
def cache(tmp_path):
    with ScoreCache(tmp_path / "scores.sqlite") as c:
        yield c


@pytest.mark.parametrize("concurrency, most", [(1, 1), (2, 2), (4, 4), (6, 6), (50, 6)])
def test_every_request_is_sent_once_and_cached_under_its_pairs(cache, concurrency, most):
    client = ScriptedClient(concurrency=concurrency)
    seen = []
    run(client, PLAN, cache, lambda req, scores: seen.append((req, scores.tolist())))
    assert sorted(client.calls) == sorted((r.query, r.documents) for r in PLAN)  # each exactly once
    assert client.most_in_flight == most  # api.concurrency workers, never more than the plan needs
    want = {pair_key(r.query, d): len(d) + 0.5 for r in PLAN for d in r.documents}
    assert cached(cache, PLAN) == want
    assert sorted(seen, key=lambda s: s[0].group) == [(r, [len(d) + 0.5 for d in r.documents]) for r in PLAN]


def test_an_empty_plan_sends_nothing(cache):
    client = ScriptedClient()
    run(client, [], cache)
    assert client.calls == [] and cache.count(HASH) == 0


def test_on_response_is_optional(cache):
    run(ScriptedClient(concurrency=2), PLAN[:2], cache)
    assert len(cached(cache, PLAN[:2])) == 3


@pytest.mark.parametrize(
    "answer",
    [
        [1.0],  # too few scores
        [1.0, 2.0, 3.0, 4.0],  # too many
        [[1.0], [2.0], [3.0]],  # the right count in the wrong shape
        [1.0, float("nan"), 3.0],
        [1.0, 2.0, float("inf")],
        [float("-inf"), 2.0, 3.0],
    ],
)
def test_scores_that_do_not_fit_the_request_stop_the_run_and_cache_nothing_of_it(cache, answer):
    bad = request(0, "bad", ["a", "b", "c"])
    client = ScriptedClient(concurrency=1, answers={"bad": answer})
    with pytest.raises(ResponseFormatError) as info:
        run(client, [bad], cache)
    assert str(info.value) == "fake http://api.test/rerank: scores do not match the request"
    assert cached(cache, [bad]) == {}


def test_the_first_error_is_raised_as_itself_and_finished_work_stays_cached(cache):
    """One worker, so the order is fixed: the two requests before the failing one are cached,
    the one after it is never sent."""
    error = RetriesExhausted("fake: gave up after 6 attempt(s)")
    plan = [request(0, "a", ["1"]), request(1, "b", ["22"]), request(2, "boom", ["x"]), request(3, "c", ["4"])]
    client = ScriptedClient(concurrency=1, answers={"boom": error})
    with pytest.raises(RetriesExhausted) as info:
        run(client, plan, cache)
    assert info.value is error
    assert [q for q, _ in client.calls] == ["a", "b", "boom"]
    assert cached(cache, plan) == {pair_key("a", "1"): 1.5, pair_key("b", "22"): 2.5}


def test_a_non_api_error_is_raised_as_itself_too(cache):
    error = KeyError("bug")
    with pytest.raises(KeyError) as info:
        run(ScriptedClient(concurrency=3, answers={"q1": error}), PLAN, cache)
    assert info.value is error


def _group(*excs):
    return BaseExceptionGroup("group", list(excs))


@pytest.mark.parametrize(
    "build, want",
    [
        (lambda e: _group(e["value"]), "value"),
        (lambda e: _group(e["value"], e["fatal"]), "fatal"),  # an API error wins over a crash beside it
        (lambda e: _group(e["fatal"], e["format"]), "fatal"),  # the first of two API errors
        (lambda e: _group(e["value"], _group(e["format"])), "format"),  # found inside a nested group
        (lambda e: _group(_group(e["value"]), e["fatal"]), "value"),  # a nested group is searched where it stands
        (lambda e: _group(e["value"], e["key"]), "value"),  # no API error: the first one
        (lambda e: _group(_group(_group(e["key"]))), "key"),  # unwrapped through every level
    ],
)
def test_the_error_surfaced_from_a_group(build, want):
    errors = {
        "value": ValueError("v"),
        "key": KeyError("k"),
        "fatal": FatalApiError("f", status=400),
        "format": ResponseFormatError("r"),
    }
    assert _first_error(build(errors)) is errors[want]
