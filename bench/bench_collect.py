"""Benchmark the API collector against the loopback fake server (not a test).

Two measurements, each against a baseline measured in the same run:

1. Throughput: pairs/s of the collector (``pipeline.api.collector.collect_api``: concurrency,
   batching, cache writes included) vs a sequential client that sends one request per pair over
   a keep-alive connection, both against a server that adds ``--latency`` (100 ms) per request.
   The collector is measured twice: with batching (one request per query group) and with
   ``max_documents_per_request=1``, which isolates what concurrency alone buys. Target: >= 20x at
   concurrency 32.
2. Rate limits: the sustained request rate as a fraction of a configured RPM, against a server
   that enforces the same limit over a sliding window (``rpm * window / 60`` requests per
   ``--window`` seconds) and answers 429 beyond it. Target: >= 90 % with no 429.
3. Pacing that learns: a server whose reported tokens are 1/18 of the client's estimate, a TPM
   limit that the *estimates* would hit at 40% of the RPM limit, so the binding limit in true
   (reported) tokens is the RPM. Achieved requests/min as a share of that binding limit, with the
   learned reported/estimated ratio vs the estimate alone (the earlier client) in the same run.
   Target: >= 90 %.

The server runs in a subprocess so it does not share the client's interpreter (and GIL).

    python bench/bench_collect.py                      # defaults: latency 0.1 s, concurrency 32
    python bench/bench_collect.py --rpm 1200 --rpm-seconds 20 --json bench_collect.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from pipeline.api.client import ApiClient  # noqa: E402
from pipeline.api.collector import collect_api, plan_requests  # noqa: E402
from pipeline.config.api import ApiConfig, Dialect  # noqa: E402
from pipeline.core.cache import ScoreCache  # noqa: E402
from pipeline.core.files import atomic_write_json  # noqa: E402


class Server:
    """``pipeline.testing.fake_api`` in a subprocess."""

    def __init__(
        self, latency: float, rate_limit: int | None = None, window: float = 60.0, token_report_ratio: float = 1.0
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "pipeline.testing.fake_api",
            "--latency",
            str(latency),
            "--token-report-ratio",
            str(token_report_ratio),
        ]
        if rate_limit is not None:
            cmd += ["--rate-limit", str(rate_limit), "--rate-window", str(window)]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.port = json.loads(line)["port"]
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/_stats", timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.base}/_reset", timeout=10)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def groups(n_queries: int, n_docs: int, tag: str) -> list[tuple[str, list[str]]]:
    return [
        (
            f"{tag} query {q}: 如何计算 softmax 的导数?",
            [f"{tag} document {j} of {q}: ∂s_i/∂z_j = s_i(δ_ij − s_j); some context text." for j in range(n_docs)],
        )
        for q in range(n_queries)
    ]


def sequential_baseline(server: Server, pairs: list[tuple[str, str]]) -> float:
    """One request per pair, one at a time, keep-alive connection: pairs/s."""
    url = f"{server.base}/siliconflow/v1/rerank"
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        for query, doc in pairs:
            r = client.post(url, json={"model": "m", "query": query, "documents": [doc], "top_n": 1})
            r.raise_for_status()
            assert r.json()["results"][0]["index"] == 0
        elapsed = time.perf_counter() - start
    return len(pairs) / elapsed


class EstimateOnlyClient(ApiClient):
    """The earlier client: every request claims its full token estimate from the TPM schedule."""

    def paced_tokens(self, est_tokens: int) -> int:
        return est_tokens


def collector_run(
    server: Server, data, concurrency: int, max_docs: int, client_cls=ApiClient, **limits
) -> tuple[float, ApiClient]:
    cfg = ApiConfig(
        dialect=Dialect.siliconflow,
        base_url=f"{server.base}/siliconflow/v1",
        model="m",
        api_key_env=None,
        instruction=None,
        concurrency=concurrency,
        max_documents_per_request=max_docs,
        rpm=limits.get("rpm"),
        tpm=limits.get("tpm"),
        rate_margin=limits.get("margin", 0.95),
    )
    plan = plan_requests(cfg, data, [list(range(len(docs))) for _, docs in data])

    async def go() -> tuple[float, ApiClient]:
        with tempfile.TemporaryDirectory() as tmp, ScoreCache(Path(tmp) / "cache.sqlite") as cache:
            async with client_cls(cfg) as client:
                start = time.perf_counter()
                await collect_api(client, plan, cache, "bench")
                elapsed = time.perf_counter() - start
        return sum(len(r.doc_indices) for r in plan) / elapsed, client

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--docs", type=int, default=8, help="documents per query group")
    parser.add_argument("--baseline-pairs", type=int, default=30)
    parser.add_argument("--unbatched-pairs", type=int, default=1024)
    parser.add_argument("--batched-pairs", type=int, default=4096)
    parser.add_argument("--rpm", type=float, default=1200.0)
    parser.add_argument("--rpm-seconds", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=5.0, help="server's sliding window for the RPM limit (s)")
    parser.add_argument(
        "--pacing-seconds", type=float, default=10.0, help="length of the learned-pacing run at full rate"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: dict[str, float | int] = {}

    # 1. throughput ---------------------------------------------------------------------------
    server = Server(args.latency)
    try:
        base_pairs = [(q, d) for q, docs in groups(args.baseline_pairs, 1, "seq") for d in docs]
        seq = sequential_baseline(server, base_pairs)
        unbatched, c1 = collector_run(
            server, groups(args.unbatched_pairs // args.docs, args.docs, "u"), args.concurrency, 1
        )
        batched, c2 = collector_run(
            server, groups(args.batched_pairs // args.docs, args.docs, "b"), args.concurrency, args.docs
        )
        max_in_flight = server.stats()["max_in_flight"]
    finally:
        server.close()
    figures.update(
        latency_s=args.latency,
        concurrency=args.concurrency,
        sequential_pairs_per_s=round(seq, 2),
        unbatched_pairs_per_s=round(unbatched, 1),
        batched_pairs_per_s=round(batched, 1),
        unbatched_ratio=round(unbatched / seq, 1),
        batched_ratio=round(batched / seq, 1),
        server_max_in_flight=max_in_flight,
    )

    # 2. sustained rate under an RPM limit ----------------------------------------------------
    limit = int(args.rpm * args.window / 60)
    server = Server(args.latency, rate_limit=limit, window=args.window)
    try:
        n_requests = int(args.rpm / 60 * args.rpm_seconds)
        data = groups(n_requests, 1, "rpm")
        _, client = collector_run(server, data, args.concurrency, 1, rpm=args.rpm, margin=0.95)
        stats = server.stats()
    finally:
        server.close()
    arrivals = sorted(stats["arrivals"])
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) * 60 if len(arrivals) > 1 else 0.0
    figures.update(
        rpm_limit=args.rpm,
        rpm_window_s=args.window,
        rpm_requests=len(arrivals),
        sustained_rpm=round(rate, 1),
        sustained_fraction=round(rate / args.rpm, 3),
        server_429=stats["rate_limited"],
        client_retries=client.stats.retries,
    )

    # 3. TPM pacing that learns from reported usage -----------------------------------------
    docs_per_request = 8
    data = groups(int(args.rpm / 60 * args.pacing_seconds), docs_per_request, "tpm")
    probe = ApiConfig(dialect=Dialect.siliconflow, base_url="http://127.0.0.1", api_key_env=None, instruction=None)
    estimate = plan_requests(probe, data[:1], [list(range(docs_per_request))])[0].est_tokens
    fake_count = sum(len(data[0][0] + d) // 4 + 1 for d in data[0][1])  # the fake's own count
    ratio = estimate / 18 / fake_count  # reported = estimate / 18
    tpm = 0.4 * args.rpm * estimate  # the estimates alone would allow 40% of the RPM
    pacing: dict[str, float] = {}
    for name, cls in (("estimate only (earlier client)", EstimateOnlyClient), ("learned ratio", ApiClient)):
        server = Server(0.02, token_report_ratio=ratio)
        try:
            _, client = collector_run(
                server, data, args.concurrency, docs_per_request, client_cls=cls, rpm=args.rpm, tpm=tpm, margin=0.95
            )
            stats = server.stats()
        finally:
            server.close()
        times = sorted(stats["arrivals"])
        achieved = (len(times) - 1) / (times[-1] - times[0]) * 60
        true_tokens = client.stats.tokens_reported / max(client.stats.succeeded, 1)
        binding = min(args.rpm, tpm / true_tokens)
        pacing[name] = achieved / binding
        figures[f"pacing_{'learned' if cls is ApiClient else 'estimate_only'}_share"] = round(achieved / binding, 3)
    figures.update(pacing_reported_over_estimate=round(client.stats.tokens_reported / client.stats.tokens_estimated, 4))

    rows = [
        ("sequential, 1 request per pair", f"{seq:.1f} pairs/s", "1.0x"),
        (f"collector c={args.concurrency}, 1 doc/request", f"{unbatched:.1f} pairs/s", f"{unbatched / seq:.1f}x"),
        (
            f"collector c={args.concurrency}, {args.docs} docs/request",
            f"{batched:.1f} pairs/s",
            f"{batched / seq:.1f}x",
        ),
        (
            f"sustained rate at rpm={args.rpm:g} (margin 0.95)",
            f"{rate:.1f} req/min",
            f"{rate / args.rpm:.1%} of limit, {stats['rate_limited']} x 429",
        ),
    ]
    rows += [
        (f"TPM pacing, reported = estimate/18: {name}", f"{share:.1%}", "of the binding limit (RPM)")
        for name, share in pacing.items()
    ]
    width = max(len(r[0]) for r in rows)
    print(f"loopback fake API, {args.latency * 1000:.0f} ms latency per request")
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value:>16}  {ratio}")
    ok = (
        figures["unbatched_ratio"] >= 20
        and figures["sustained_fraction"] >= 0.9
        and figures["server_429"] == 0
        and figures["pacing_learned_share"] >= 0.9
    )
    print(
        "targets (>= 20x at concurrency 32; >= 90% of RPM, no 429; learned pacing >= 90% of the binding limit):",
        "met" if ok else "NOT met",
    )
    if args.json:
        atomic_write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
