"""The demo's local model: a small Qwen3-architecture reranker trained on the demo's training part.

Why it exists: every stage of the pipeline should be runnable offline on *real* model output,
and the real Qwen3-Reranker checkpoints come from a hub. This model has Qwen3-Reranker's
architecture (``Qwen3ForCausalLM``), its prompt and its scoring rule (P(yes) from the "yes"/"no"
logits at the last position), so it loads through the same scorer code as Qwen3-Reranker-4B.
It is small (hidden 128, 2 layers, a few thousand BPE tokens) and is trained for a couple of
minutes on CPU, which is enough for its scores to carry real relevance signal
(:func:`ranking_quality` reports NDCG@10 against a random order).

Training: official prompt (:class:`pipeline.scorers.prompts.PromptEncoder`, the scorer's own
encoder), binary cross-entropy of sigmoid(l_yes - l_no) against the graded label / 3, plus a
listwise softmax term per query; AdamW with warm-up and cosine decay; one query group (ten
documents) is a unit of a batch. Everything is seeded: the same config gives the same weights on
the same machine (another CPU may differ in the last bits).

Two revisions are written: ``v1`` after ``steps`` updates and ``v2`` after ``extra_steps_v2``
more (v1 trained a little further), so switching revisions is a real model-version change.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.demo import TrainSettings
from pipeline.data.dataset import Dataset
from pipeline.scorers.prompts import BODY, DEFAULT_INSTRUCTION, PREFIX, SUFFIX

REVISIONS = ("v1", "v2")


def qwen3_config(tokenizer: Any, **shape: Any):
    """A ``Qwen3Config`` for ``tokenizer`` with the given shape (special token ids from the tokenizer)."""
    from transformers import Qwen3Config

    params: dict[str, Any] = {"vocab_size": len(tokenizer), "tie_word_embeddings": False}
    params.update(shape)
    params.update(
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        bos_token_id=None,
    )
    config = Qwen3Config(**params)
    config.architectures = ["Qwen3ForCausalLM"]
    return config


def tokenizer_corpus(dataset: Dataset) -> list[str]:
    """Training texts plus the prompt pieces, so the prompt and "yes"/"no" tokenise compactly."""
    prompt = [PREFIX, SUFFIX, BODY.format(instruction=DEFAULT_INSTRUCTION, query="", doc=""), "yes", "no"]
    texts = [q.text for q in dataset.queries] + [d.text for q in dataset.queries for d in q.documents]
    return prompt * 50 + sorted(set(texts))


def _encode_groups(dataset: Dataset, tokenizer: Any, max_length: int) -> list[tuple[list[list[int]], np.ndarray]]:
    from pipeline.scorers.prompts import PromptEncoder

    encoder = PromptEncoder(tokenizer, "official", DEFAULT_INSTRUCTION, max_length)
    groups = []
    for q in dataset.queries:
        rows = encoder.encode([(q.text, d.text) for d in q.documents])
        labels = np.array([0.0 if d.label is None else d.label for d in q.documents], dtype=np.float32)
        groups.append((rows, labels))
    return groups


class _Trainer:
    """AdamW on the yes/no margin at the last position; resumable so v2 continues from v1."""

    def __init__(self, model: Any, tokenizer: Any, groups: list, settings: TrainSettings, total_steps: int) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.groups = groups
        self.s = settings
        self.total_steps = total_steps
        self.yes_id = tokenizer.convert_tokens_to_ids("yes")
        self.no_id = tokenizer.convert_tokens_to_ids("no")
        from pipeline.scorers.packing import register

        model.set_attn_implementation(register())
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        self.rng = random.Random(settings.seed)
        self.order: list[int] = []
        self.step = 0
        self.losses: list[float] = []

    def _lr(self) -> float:
        s = self.s
        if self.step < s.warmup_steps:
            return s.learning_rate * (self.step + 1) / s.warmup_steps
        progress = (self.step - s.warmup_steps) / max(1, self.total_steps - s.warmup_steps)
        return s.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def _next_groups(self) -> list[int]:
        out = []
        for _ in range(self.s.queries_per_step):
            if not self.order:
                self.order = list(range(len(self.groups)))
                self.rng.shuffle(self.order)
            out.append(self.order.pop())
        return out

    def margins(self, rows: Sequence[Sequence[int]]):
        """l_yes - l_no at each row's last token, run packed like the scorer (no padding, the
        prompt prefix that all rows share computed once, with gradients through it)."""
        from pipeline.scorers.packing import packed_runner

        w = self.model.lm_head.weight
        direction = w[self.yes_id] - w[self.no_id]
        return packed_runner(self.model.model, rows, self.torch.device("cpu"), lambda h: h @ direction)(rows)

    def run(self, until: int, progress: Callable[[int, float], None] | None = None) -> None:
        torch = self.torch
        self.model.train()
        while self.step < until:
            chosen = self._next_groups()
            rows = [r for g in chosen for r in self.groups[g][0]]
            labels = torch.tensor(np.concatenate([self.groups[g][1] for g in chosen]))
            z = self.margins(rows)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, labels / 3.0)
            if self.s.listwise_weight:
                start = 0
                listwise = []
                for g in chosen:
                    n = len(self.groups[g][0])
                    target = torch.softmax(labels[start : start + n], dim=0)
                    listwise.append(-(target * torch.log_softmax(z[start : start + n], dim=0)).sum())
                    start += n
                loss = loss + self.s.listwise_weight * torch.stack(listwise).mean()
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.step += 1
            self.losses.append(float(loss.detach()))
            if progress is not None:
                progress(self.step, self.losses[-1])
        self.model.eval()


def train_revisions(
    train: Dataset, out_dir: str | Path, settings: TrainSettings, progress: Callable[[int, float], None] | None = None
) -> dict[str, Any]:
    """Build the tokenizer and model, train, and save ``out_dir/v1`` and ``out_dir/v2``.

    Each revision directory is written by ``save_pretrained`` (safetensors) plus the tokenizer,
    staged under a temporary name and renamed into place, so a crash leaves no half-written
    revision. Returns a summary (settings, data sizes, steps and final losses; no timings, so the
    report is the same file on every run).
    """
    import shutil
    import tempfile

    import torch
    from transformers import Qwen3ForCausalLM

    from pipeline.demo.tokenizer import train_qwen_style_tokenizer

    s = settings
    random.seed(s.seed)
    np.random.seed(s.seed)
    torch.manual_seed(s.seed)
    tokenizer = train_qwen_style_tokenizer(tokenizer_corpus(train), vocab_size=s.vocab_size)
    config = qwen3_config(
        tokenizer,
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        num_key_value_heads=s.num_kv_heads,
        head_dim=s.hidden_size // s.num_heads,
        max_position_embeddings=max(1024, s.max_length),
        initializer_range=s.init_range,
    )
    model = Qwen3ForCausalLM(config)
    groups = _encode_groups(train, tokenizer, s.max_length)
    trainer = _Trainer(model, tokenizer, groups, s, total_steps=s.steps + s.extra_steps_v2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "settings": asdict(s),
        "train_queries": len(train.queries),
        "train_pairs": train.n_pairs,
        "vocab": len(tokenizer),
        "revisions": {},
    }
    for revision, until in (("v1", s.steps), ("v2", s.steps + s.extra_steps_v2)):
        trainer.run(until, progress)
        staging = Path(tempfile.mkdtemp(prefix=f".{revision}.tmp-", dir=out))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            final = out / revision
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        window = trainer.losses[-50:]
        summary["revisions"][revision] = {"steps": until, "final_loss": round(float(np.mean(window)), 5)}
    return summary


def ranking_quality(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    k: int = 10,
    n_bootstrap: int = 1000,
    random_draws: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """NDCG@k of ``scores`` against the graded ``labels``, next to a random order's, with intervals.

    The random order's NDCG@k is its expectation per query (``random_draws`` random scorings
    averaged), so its interval reflects the choice of queries, not the luck of one shuffle. Both
    intervals are percentile bootstraps over the same resampled queries.
    """
    from pipeline.calibration.metrics import per_query_stats

    model = per_query_stats(scores, labels, groups, k).rank["ndcg"]
    rng = np.random.default_rng(seed)
    random_runs = np.stack(
        [per_query_stats(rng.random(scores.shape[0]), labels, groups, k).rank["ndcg"] for _ in range(random_draws)]
    )
    random_mean = random_runs.mean(axis=0)
    valid = np.isfinite(model) & np.isfinite(random_mean)
    model, random_mean = model[valid], random_mean[valid]
    draws = rng.integers(0, model.shape[0], size=(n_bootstrap, model.shape[0]))
    out: dict[str, Any] = {"k": k, "queries": int(model.shape[0])}
    for name, values in (("model", model), ("random", random_mean)):
        boot = values[draws].mean(axis=1)
        low, high = np.quantile(boot, [0.025, 0.975])
        out[name] = {
            "ndcg": round(float(values.mean()), 4),
            "ci_low": round(float(low), 4),
            "ci_high": round(float(high), 4),
        }
    out["separated"] = out["model"]["ci_low"] > out["random"]["ci_high"]
    return out
