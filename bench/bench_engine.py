"""A vLLM engine against the in-process scorer on the same pairs: pairs/s and agreement.

The capacity section of docs/scale-out.md needs one measured figure this project cannot take on a CPU
machine: how many Qwen3-Reranker pairs per second vLLM scores on a GPU, next to the in-process
transformers scorer on the same GPU. This script measures both in one run and prints the ratio.

* pairs: ``--queries`` queries x ``--docs`` documents of ``--doc-tokens`` tokens (bench_reranker's
  generator, the model's own tokenizer);
* baseline: ``build_scorer`` with ``local.template=vllm`` (what the engine reproduces), one call,
  after a warm-up, on ``--device``;
* engine: the project's engine scorer (``local.engine``) against a vLLM server, concurrency
  ``--concurrency``; the server is started here (``vllm serve`` with the Qwen3 reranker's
  ``--hf-overrides``) unless ``--engine-url`` points at a running one;
* agreement: max |Δ| and the Spearman of the two columns.

GPU machine (vLLM installed; the 0.6B from the hub or a local copy)::

    python bench/bench_engine.py --model Qwen/Qwen3-Reranker-0.6B --device cuda --dtype bfloat16 \\
        --queries 200 --docs 20 --doc-tokens 300

Smoke run anywhere (a tiny random checkpoint; the "engine" is the tests' vLLM stand-in, plain
transformers behind the fake server's vLLM routes)::

    python bench/bench_engine.py --stand-in --queries 8 --docs 5 --doc-tokens 40
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

HF_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}


def groups_for(model: str, queries: int, docs: int, doc_tokens: int):
    from bench_reranker import make_pairs
    from transformers import AutoTokenizer

    from pipeline.scorers.base import QueryGroup

    tokenizer = AutoTokenizer.from_pretrained(model)
    pairs = make_pairs(tokenizer, queries * docs, seed=0, lo=doc_tokens, hi=doc_tokens)
    return [
        QueryGroup(f"{pairs[q * docs][0]} ({q})", [d for _, d in pairs[q * docs : (q + 1) * docs]])
        for q in range(queries)
    ]


def timed(scorer, groups) -> tuple[float, list[float]]:
    scorer.score(groups[:1])  # warm-up: kernels, connections
    start = time.perf_counter()
    out = scorer.score(groups)
    return time.perf_counter() - start, [float(v) for values in out for v in values]


def start_vllm(model: str, dtype: str, port: int) -> subprocess.Popen:
    command = [
        "vllm",
        "serve",
        model,
        "--runner",
        "pooling",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--dtype",
        dtype,
        "--hf-overrides",
        json.dumps(HF_OVERRIDES),
    ]
    print("starting:", " ".join(command), file=sys.stderr)
    return subprocess.Popen(command, stdout=sys.stderr, stderr=sys.stderr)


def wait_ready(url: str, server: subprocess.Popen | None, timeout_s: float = 900) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"vllm serve exited with {server.returncode}")
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise SystemExit(f"no answer from {url}/v1/models within {timeout_s:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--doc-tokens", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--engine-url", default=None, help="a running vLLM server (else one is started)")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--stand-in", action="store_true", help="tiny model + the tests' vLLM stand-in (CPU smoke)")
    args = parser.parse_args(argv)

    import numpy as np
    from scipy.stats import spearmanr

    from pipeline.config.local import EngineConfig
    from pipeline.scorers import LocalScorerConfig, build_scorer

    server = stand_in = None
    model = args.model
    if args.stand_in:
        from pipeline.testing import tiny_models
        from pipeline.testing.fake_api import FakeApiServer
        from pipeline.testing.plain_reranker import PlainPairReranker

        model = str(tiny_models.build_tiny_qwen3_reranker(Path(tempfile.mkdtemp()) / "tiny"))
        args.device, args.dtype = "cpu", "float32"
        stand_in = FakeApiServer(pair_scorer=PlainPairReranker(model), served_model={"id": "tiny"}).start()
        url = stand_in.base_url("vllm")
    elif args.engine_url:
        url = args.engine_url.rstrip("/")
    else:
        url = f"http://127.0.0.1:{args.port}"
        server = start_vllm(model, args.dtype, args.port)
    try:
        groups = groups_for(model, args.queries, args.docs, args.doc_tokens)
        pairs = sum(len(g.documents) for g in groups)
        base = LocalScorerConfig(
            model=model,
            template="vllm",
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            max_batch_tokens=args.batch_size * (args.doc_tokens + 128),
        )
        with build_scorer(base) as here:
            t_here, s_here = timed(here, groups)
        wait_ready(url, server)
        engine = build_scorer(
            LocalScorerConfig(
                model=model,
                template="vllm",
                engine=EngineConfig(base_url=url, concurrency=args.concurrency, max_documents_per_request=args.docs),
            )
        )
        t_engine, s_engine = timed(engine, groups)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        if stand_in is not None:
            stand_in.stop()
    a, b = np.array(s_here), np.array(s_engine)
    result = {
        "model": args.model if not args.stand_in else "tiny (stand-in)",
        "device": args.device,
        "dtype": args.dtype,
        "pairs": pairs,
        "doc_tokens": args.doc_tokens,
        "in_process_pairs_per_s": round(pairs / t_here, 2),
        "engine_pairs_per_s": round(pairs / t_engine, 2),
        "engine_over_in_process": round(t_here / t_engine, 2),
        "max_abs_diff": float(np.max(np.abs(a - b))),
        "spearman": float(spearmanr(a, b).statistic),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
