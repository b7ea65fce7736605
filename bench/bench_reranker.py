"""Qwen3-Reranker scorer vs the model card's transformers snippet: pairs/s, peak memory, max |Δ|.

Both run in one invocation on the same checkpoint, the same (query, document) pairs and the same
batch size; documents have mixed lengths (uniform 40-700 tokens). Checkpoints have random weights
(no network): ``--shape tiny`` (hidden 32, 2 layers), ``--shape 0.6b`` (Qwen3-Reranker-0.6B's
exact architecture: vocab 151,669, hidden 1,024, 28 layers, 16 heads, 8 KV heads, intermediate
3,072, head_dim 128, tied embeddings) or ``--shape 4b`` (for GPUs). The tokenizer is the tiny
test tokenizer: it only decides token ids, the compute depends on the token counts, which are
the ones stated.

Method. Each variant runs in its own subprocess, so one cannot inherit the other's memory:

1. load the model (our scorer through ``build_scorer``; the card through its own calls);
2. warm up on two short pairs (first-call overheads are not throughput);
3. reset the kernel's resident-set high-water mark (``echo 5 > /proc/self/clear_refs``) and
   read ``VmRSS`` (baseline: loaded weights + runtime);
4. score all pairs, timed with ``perf_counter``;
5. read ``VmHWM``: peak memory beyond the loaded weights = VmHWM - baseline.

The warm-up is tiny, so little freed-but-resident heap sits in the baseline: the delta counts
everything the scoring touches (fragmentation included), i.e. it is an upper bound on live
memory. tracemalloc would miss torch's C++ allocations entirely. (Forcing glibc to mmap every
large block, ``MALLOC_MMAP_THRESHOLD_``, was tried: it slowed the snippet with page faults and
distorted the speed ratio.) On CUDA the peak is ``torch.cuda.max_memory_allocated()`` minus the
allocation after warm-up.

The printout splits the speed ratio into tokens run (deterministic: what packing without padding
and running the shared prompt prefix once save) and time per token (measured: what skipping the
vocabulary logits and the KV cache saves), so a run disturbed by other load on the machine is
easy to spot.

Run from the repository root with the venv active::

    python bench/bench_reranker.py --shape tiny --pairs 64 --batch-size 8
    python bench/bench_reranker.py --shape 0.6b --pairs 32 --batch-size 8 --workdir /tmp/bench-work  # ~7 min, 2 cores
    python bench/bench_reranker.py --shape 4b --dtype bfloat16 --device cuda --pairs 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"speed": 3.0, "memory": 5.0, "delta": 1e-5}  # issue targets for the 0.6B shape, float32


# -- data ------------------------------------------------------------------------------------------
def make_pairs(tokenizer, n: int, seed: int, lo: int = 40, hi: int = 700) -> list[tuple[str, str]]:
    """``n`` (query, document) pairs; document lengths uniform in [lo, hi] tokens of ``tokenizer``."""
    from pipeline.testing.tiny_models import _WORDS

    rng = random.Random(seed)
    queries = ["What is the capital of China?", "Explain gravity", "which planet is red", "python square function"]
    pairs = []
    for i in range(n):
        target = rng.randint(lo, hi)
        words = [rng.choice(_WORDS) for _ in range(target)]
        # shrink/grow to the exact token count the model will see
        while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) > target:
            words.pop()
        while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) < target:
            words.append(rng.choice(_WORDS))
        pairs.append((queries[i % len(queries)], " ".join(words)))
    return pairs


def tokens_run(tokenizer, pairs, batch_size: int) -> dict[str, int]:
    """Tokens each variant pushes through the model: the card pads each batch of the given order;
    ours runs the call's shared prefix once, then every row's remaining tokens packed (no padding);
    "real" is the unpadded total."""
    from pipeline.scorers.packing import common_prefix_length
    from pipeline.scorers.prompts import DEFAULT_INSTRUCTION, PromptEncoder

    rows = PromptEncoder(tokenizer, "official", DEFAULT_INSTRUCTION, 8192).encode(pairs)
    lengths = [len(r) for r in rows]
    card = sum(
        len(lengths[i : i + batch_size]) * max(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)
    )
    prefix = common_prefix_length(rows)
    ours = prefix + sum(n - prefix for n in lengths)
    return {"real": sum(lengths), "card": card, "ours": ours, "shared_prefix": prefix}


def build_checkpoint(shape: str, workdir: Path) -> Path:
    from pipeline.testing import tiny_models

    target = workdir / f"qwen3-reranker-{shape}-random"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    shapes = {"tiny": {}, "0.6b": tiny_models.QWEN3_RERANKER_0_6B_SHAPE, "4b": tiny_models.QWEN3_RERANKER_4B_SHAPE}
    init = 0.2 if shape == "tiny" else 0.02  # Qwen's own initializer_range for the real shapes
    t0 = time.perf_counter()
    tiny_models.build_tiny_qwen3_reranker(target, shape=shapes[shape], initializer_range=init)
    print(f"built random-weight {shape} checkpoint in {time.perf_counter() - t0:.0f} s: {target}", flush=True)
    return target


# -- worker (one variant per process) --------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(args: argparse.Namespace) -> None:
    import torch

    pairs = [tuple(p) for p in json.loads(Path(args.pairs_file).read_text())]
    dtype = getattr(torch, args.dtype)
    if args.variant == "card":
        from pipeline.testing.model_card import ModelCardReranker

        if args.card_reuse_memory:  # allocator-neutral comparison: the card gets our CPU allocator setting
            from pipeline.scorers.cpu_memory import reuse_freed_memory

            reuse_freed_memory()
        card = ModelCardReranker(args.checkpoint, dtype=dtype)
        if args.device != "cpu":
            card.model.to(args.device)

        def run(batch_pairs):
            return card.score(batch_pairs, batch_size=args.batch_size)

        device = card.model.device
    else:
        from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

        scorer = build_scorer(
            LocalScorerConfig(model=args.checkpoint, dtype=args.dtype, device=args.device, batch_size=args.batch_size)
        )

        def run(batch_pairs):
            # one group per query, documents in their original order, scores back in pair order
            order: dict[str, list[int]] = {}
            for i, (q, _) in enumerate(batch_pairs):
                order.setdefault(q, []).append(i)
            groups = [QueryGroup(q, [batch_pairs[i][1] for i in idx]) for q, idx in order.items()]
            out = [0.0] * len(batch_pairs)
            for idx, scores in zip(order.values(), scorer.score(groups)):
                for i, s in zip(idx, scores):
                    out[i] = float(s)
            return out

        device = scorer.device
    run(pairs[:2] if len(pairs) > 1 else pairs)  # warm-up
    gc.collect()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")
    base_rss = _status_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    scores = run(pairs)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() - base_alloc) if cuda else _status_kib("VmHWM") * 1024 - base_rss
    result = {"variant": args.variant, "seconds": seconds, "peak_bytes": peak, "base_rss": base_rss,
              "memory": "cuda allocated" if cuda else "RSS", "scores": scores}  # fmt: skip
    Path(args.out).write_text(json.dumps(result))


def spawn(variant: str, args: argparse.Namespace, checkpoint: Path, pairs_file: Path, tmp: Path) -> dict:
    out = tmp / f"{variant}.json"
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, __file__, "--worker", variant, "--checkpoint", str(checkpoint), "--pairs-file",
           str(pairs_file), "--out", str(out), "--batch-size", str(args.batch_size), "--dtype", args.dtype,
           "--device", args.device] + (["--card-reuse-memory"] if args.card_reuse_memory else [])  # fmt: skip
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


# -- driver ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["tiny", "0.6b", "4b"], default="tiny")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where checkpoints are built (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--card-reuse-memory", action="store_true",
                        help="run the card with the scorer's CPU allocator setting too (local.reuse_cpu_memory), "
                             "to see the speed-up without it")  # fmt: skip
    parser.add_argument("--worker", choices=["card", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--pairs-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.variant = args.worker
        worker(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-reranker-") as tmpdir:
        tmp = Path(tmpdir)
        workdir = Path(args.workdir) if args.workdir else tmp
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = build_checkpoint(args.shape, workdir)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        pairs = make_pairs(tokenizer, args.pairs, args.seed)
        lengths = [len(tokenizer.encode(d, add_special_tokens=False)) for _, d in pairs]
        tokens = tokens_run(tokenizer, pairs, args.batch_size)
        pairs_file = tmp / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        print(f"shape={args.shape} dtype={args.dtype} device={args.device} pairs={len(pairs)} "
              f"batch={args.batch_size} doc tokens min/mean/max={min(lengths)}/{sum(lengths) / len(lengths):.0f}/"
              f"{max(lengths)}", flush=True)  # fmt: skip
        print(f"tokens incl. prompt: real {tokens['real']}; through the model: card {tokens['card']} (padded), "
              f"ours {tokens['ours']} (packed, {tokens['shared_prefix']}-token shared prefix once)", flush=True)  # fmt: skip
        results = {}
        for variant in ("card", "ours"):
            results[variant] = r = spawn(variant, args, checkpoint, pairs_file, tmp)
            print(f"  {variant:>4}: {len(pairs) / r['seconds']:8.2f} pairs/s  {1000 * r['seconds'] / tokens[variant]:7.3f} "
                  f"s per 1k tokens run  peak {r['memory']} beyond weights {r['peak_bytes'] / 2**20:8.1f} MiB  "
                  f"(baseline {r['base_rss'] / 2**20:.0f} MiB RSS)", flush=True)  # fmt: skip

    card, ours = results["card"], results["ours"]
    speed = card["seconds"] / ours["seconds"]
    memory = card["peak_bytes"] / max(ours["peak_bytes"], 1)
    delta = max(abs(a - b) for a, b in zip(card["scores"], ours["scores"]))
    print(f"speed ratio (ours/card pairs/s): {speed:.2f}x   memory ratio (card/ours peak): {memory:.1f}x   "
          f"max |delta| = {delta:.2e}")  # fmt: skip
    per_token = (card["seconds"] / tokens["card"]) / (ours["seconds"] / tokens["ours"])
    print(
        f"  = {tokens['card'] / tokens['ours']:.2f}x fewer tokens run (no padding, prompt prefix once) "
        f"x {per_token:.2f}x less time per token (no vocabulary logits, no KV cache)"
    )
    if args.shape == "0.6b" and args.dtype == "float32":
        ok = speed >= TARGETS["speed"] and memory >= TARGETS["memory"] and delta <= TARGETS["delta"]
        print(f"targets (>= {TARGETS['speed']}x speed, <= 1/{TARGETS['memory']:.0f} memory, |delta| <= "
              f"{TARGETS['delta']}): {'met' if ok else 'NOT met'}")  # fmt: skip
    if args.json:
        summary = {k: v for k, v in vars(args).items() if k in ("shape", "pairs", "batch_size", "dtype", "device")}
        summary.update(speed_ratio=speed, memory_ratio=memory, max_abs_delta=delta,
                       card_pairs_per_s=len(pairs) / card["seconds"], ours_pairs_per_s=len(pairs) / ours["seconds"],
                       card_peak_bytes=card["peak_bytes"], ours_peak_bytes=ours["peak_bytes"],
                       tokens_run=tokens, per_token_ratio=per_token)  # fmt: skip
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
