"""`python -m pipeline serve` under load against the offline scorer on the same pairs.

Setup, all in one run:

* a random-weight checkpoint in the Qwen3-Reranker-0.6B shape (``--shape 0.6b``, as
  ``bench_reranker.py`` builds it) or the tiny test shape (``--shape tiny``, a smoke run);
* rerank requests of 1-20 documents each (uniform), documents of ``--doc-tokens`` tokens;
* a calibrator artifact whose manifest records that checkpoint's fingerprint (so ``serve`` is
  ready), written next to it;
* baseline: the offline scorer (``build_scorer`` + ``score`` on every request's group in one
  call, the best case for batching), in this process, after a warm-up;
* service: ``python -m pipeline serve`` in its own process; 16 concurrent clients (asyncio +
  httpx) in another process, each sending its next request as soon as the last one answered.

Target (issue #12): the service reaches >= 80% of the offline pairs/s; p50 and p99 request
latency are reported. Both sides share the machine's cores with the client process, as a
service does with its callers on one host.

    python bench/bench_serve.py --shape tiny --requests 400
    python bench/bench_serve.py --shape 0.6b --requests 48 --doc-tokens 20 60 --workdir /tmp/bench-work  # 2 cores: ~10 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

SERVED = "bench/qwen3-reranker"
TARGET = 0.8


def make_requests(checkpoint: Path, n: int, seed: int, doc_tokens: tuple[int, int]) -> list[dict]:
    from bench_reranker import make_pairs
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    rng = random.Random(seed)
    sizes = [rng.randint(1, 20) for _ in range(n)]
    docs = [d for _, d in make_pairs(tokenizer, min(sum(sizes), 200), seed, *doc_tokens)]
    queries = ["What is the capital of China?", "Explain gravity", "which planet is red", "python square function"]
    return [
        {"model": SERVED, "query": f"{queries[i % 4]} ({i})", "documents": [rng.choice(docs) for _ in range(k)]}
        for i, k in enumerate(sizes)
    ]


def write_artifact_for(checkpoint: Path, workdir: Path, batch_size: int) -> Path:
    """A poly calibrator (fitted on synthetic scores) whose manifest names this checkpoint."""
    import numpy as np

    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact
    from pipeline.scorers import LocalScorerConfig, build_scorer

    with build_scorer(LocalScorerConfig(model=str(checkpoint), device="cpu", batch_size=batch_size)) as scorer:
        fp = scorer.fingerprint()
    x = np.random.default_rng(0).uniform(size=500)
    model = ScoreCalibrationModel(make_calibrator("poly"), None, ["local"]).fit(x[:, None], x**1.5)
    manifest = {
        "sources": [
            {"column": "local", "kind": "local", "model": fp["model"], "revision": fp["revision"], "fingerprint": fp}
        ],
        "target": {"column": "reference", "kind": "api", "model": SERVED, "instruction": None},
    }
    return write_artifact(workdir, "bench-serve", model, manifest, write_joblib=False)


def offline_pairs_per_s(checkpoint: Path, requests: list[dict], batch_size: int) -> float:
    from pipeline.scorers import LocalScorerConfig, build_scorer
    from pipeline.scorers.base import QueryGroup

    groups = [QueryGroup(r["query"], r["documents"]) for r in requests]
    with build_scorer(LocalScorerConfig(model=str(checkpoint), device="cpu", batch_size=batch_size)) as scorer:
        scorer.score(groups[:2])  # warm-up
        t0 = time.perf_counter()
        scorer.score(groups)
        elapsed = time.perf_counter() - t0
    return sum(len(g.documents) for g in groups) / elapsed


# -- client process -------------------------------------------------------------------------------
async def _clients(url: str, requests: list[dict], concurrency: int) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            response = await client.post(url + "/v1/rerank", json=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await client.post(url + "/v1/rerank", json=requests[0])  # warm-up, not timed
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "latencies_s": latencies}


def client_main(url: str, requests_file: str, concurrency: int) -> None:
    requests = json.loads(Path(requests_file).read_text())
    print(json.dumps(asyncio.run(_clients(url, requests, concurrency))))


def start_service(
    artifact: Path, batch_size: int, max_batch_pairs: int, wait_ms: float
) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", f"serve.artifact={artifact}", "serve.port=0",
                             "serve.device=cpu", f"serve.batch_size={batch_size}",
                             f"serve.max_batch_pairs={max_batch_pairs}", f"serve.batch_wait_ms={wait_ms}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("serve did not print its address")
    url = f"http://127.0.0.1:{match.group(1)}"
    import httpx

    while httpx.get(url + "/ready").status_code != 200:
        if proc.poll() is not None:
            raise SystemExit("serve exited before it was ready")
        time.sleep(0.2)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=["tiny", "0.6b"], default="tiny")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--doc-tokens", type=int, nargs=2, default=(40, 200), metavar=("LO", "HI"))
    parser.add_argument("--batch-size", type=int, default=16, help="the scorer's batch size, both sides")
    parser.add_argument("--max-batch-pairs", type=int, default=64)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", nargs=3, metavar=("URL", "REQUESTS_FILE", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client[0], args.client[1], int(args.client[2]))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench_reranker import build_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = build_checkpoint(args.shape, workdir)
        requests = make_requests(checkpoint, args.requests, args.seed, tuple(args.doc_tokens))
        pairs = sum(len(r["documents"]) for r in requests)
        requests_file = workdir / "requests.json"
        requests_file.write_text(json.dumps(requests))
        artifact = write_artifact_for(checkpoint, workdir / "artifacts", args.batch_size)
        print(
            f"{args.requests} requests, {pairs} pairs, {args.clients} clients, shape {args.shape}, "
            f"batch size {args.batch_size}, max batch pairs {args.max_batch_pairs}",
            flush=True,
        )
        offline = offline_pairs_per_s(checkpoint, requests, args.batch_size)
        print(f"offline scorer (baseline): {offline:,.1f} pairs/s", flush=True)
        proc, url = start_service(artifact, args.batch_size, args.max_batch_pairs, args.batch_wait_ms)
        try:
            out = subprocess.run([sys.executable, __file__, "--client", url, str(requests_file), str(args.clients)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result = json.loads(out.stdout)
    served = pairs / result["elapsed_s"]
    lat = sorted(result["latencies_s"])
    p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    ratio = served / offline
    print(
        f"serve: {served:,.1f} pairs/s = {ratio:.2f}x offline (target >= {TARGET:.2f}: "
        f"{'met' if ratio >= TARGET else 'MISSED'}); latency p50 {p50 * 1e3:,.0f} ms, p99 {p99 * 1e3:,.0f} ms"
    )


if __name__ == "__main__":
    main()
