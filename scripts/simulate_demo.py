"""Write the SIMULATED demo paired-score table (data/demo/paired_scores.csv + .meta.json).

These numbers are invented by a known generative model so that `python -m pipeline fit` runs
offline on a fresh clone. They are NOT scores from any API or model; the sidecar metadata says
``"simulated": true`` and every artifact fitted on them carries that flag in its manifest.

Model: each document has a latent relevance r = query offset + N(0, 1).
  reference       = sigmoid(2.2 r - 1.0)                      ("API" probability)
  local           = sigmoid(1.3 (r + N(0, 0.35)) + 0.8)       (local reranker: other scale, noise)
  local_embedding = 0.35 + 0.12 tanh(0.8 (r + N(0, 0.6)))     (cosine of an embedder: noisier)
Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.data import write_table, write_table_meta


def simulate(n_queries: int = 60, seed: int = 7) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {"query_id": [], "doc_id": [], "reference": [], "local": [], "local_embedding": []}
    for q in range(n_queries):
        n_docs = int(rng.integers(6, 13))
        r = rng.normal(0.0, 0.6) + rng.normal(0.0, 1.0, n_docs)
        reference = 1 / (1 + np.exp(-(2.2 * r - 1.0)))
        local = 1 / (1 + np.exp(-(1.3 * (r + rng.normal(0, 0.35, n_docs)) + 0.8)))
        embedding = 0.35 + 0.12 * np.tanh(0.8 * (r + rng.normal(0, 0.6, n_docs)))
        for d in range(n_docs):
            cols["query_id"].append(f"q{q:03d}")
            cols["doc_id"].append(f"q{q:03d}-d{d:02d}")
            cols["reference"].append(round(float(reference[d]), 6))
            cols["local"].append(round(float(local[d]), 6))
            cols["local_embedding"].append(round(float(embedding[d]), 6))
    return cols


META = {
    "simulated": True,
    "note": "SIMULATED by scripts/simulate_demo.py; not real API or model scores",
    "generator": "scripts/simulate_demo.py",
    "preprocessing": {"nfkc": False, "whitespace": False, "quotes": False},
    "sources": {
        "reference": {"kind": "api", "model": "simulated/reference-api", "revision": "sim-v1", "score_type": "probability"},
        "local": {"kind": "local", "model": "simulated/local-reranker", "revision": "sim-v1", "score_type": "probability"},
        "local_embedding": {"kind": "local", "model": "simulated/local-embedding", "revision": "sim-v1", "score_type": "cosine"},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/demo/paired_scores.csv")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    path = write_table(Path(args.out), simulate(args.queries, args.seed))
    write_table_meta(path, {**META, "seed": args.seed, "queries": args.queries})
    print(f"wrote SIMULATED demo table {path}")


if __name__ == "__main__":
    main()
