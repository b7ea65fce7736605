"""Bi-encoder embedding scorer: relevance = cosine(query embedding, document embedding).

Qwen3-Embedding conventions (the default ``pooling=last``):

* queries are ``"Instruct: {task}\\nQuery:{query}"`` (no space after ``Query:``, as in the
  model card), documents are embedded bare; ``task: null`` embeds queries bare too;
* the tokenizer is called with its own special tokens, so the EOS that Qwen3-Embedding's
  tokenizer appends is there exactly when the tokenizer defines it;
* last-token pooling reads the last *real* token of each row, found from the attention mask, so
  it is correct with left padding (what the model card uses) and with right padding alike;
* L2 normalisation; ``dimensions=k`` keeps the first k coordinates and re-normalises
  (Matryoshka), which is what the API's ``dimensions`` parameter returns.

``pooling=mean`` (sentence-transformers models such as all-MiniLM-L6-v2) averages the real tokens;
``pooling=cls`` takes the first real token. :meth:`EmbeddingScorer.embed` returns the vectors
themselves for the embedding consistency check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pipeline.config.local import LocalScorerConfig, Pooling
from pipeline.runtime.text import TextConfig
from pipeline.scorers.base import ProgressCallback, QueryGroup
from pipeline.scorers.batching import pad, plan_batches
from pipeline.scorers.hf import TransformersScorer
from pipeline.scorers.loading import ScorerLoadError, architectures, load_config, load_model, load_tokenizer
from pipeline.scorers.texts import EMBEDDING_QUERY_TEMPLATE as QUERY_TEMPLATE
from pipeline.scorers.texts import embedding_query, embedding_text


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(rows, length, dim) hidden states -> (rows, dim), reading only real tokens."""
    mask = mask.to(hidden.device)
    if pooling is Pooling.mean:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if pooling is Pooling.cls:
        return hidden[rows, mask.argmax(1)]  # first real token, whatever the padding side
    last = mask.shape[1] - 1 - mask.flip(1).argmax(1)  # last real token, whatever the padding side
    return hidden[rows, last]


class EmbeddingScorer(TransformersScorer):
    kind = "embedding"
    score_type = "cosine"

    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> None:
        super().__init__(cfg, text_cfg)
        cfg = self.cfg  # coerced: Enums even when built in code with strings
        from transformers import AutoModel

        self.pooling = Pooling(cfg.pooling)
        # last-token pooling is the decoder convention (left padding, as the model card); pooling
        # reads the mask, so the side only matters for speed and for matching the card bit for bit
        self.padding_side = "left" if self.pooling is Pooling.last else "right"
        hf_config = load_config(self.source, cfg)
        if any("SequenceClassification" in a for a in architectures(hf_config)):
            raise ScorerLoadError(f"{cfg.model} is a classifier checkpoint; use local.kind=cross_encoder")
        self.tokenizer = load_tokenizer(self.source, cfg, padding_side=self.padding_side)
        model = load_model(
            AutoModel, self.source, cfg, instead="Check local.model: kind=embedding needs a complete encoder."
        )
        if getattr(model.config, "use_cache", None):
            model.config.use_cache = False  # no KV cache for a single forward pass
        self.model = model.to(self.device).eval()
        width = int(getattr(model.config, "hidden_size", 0) or 0)
        if cfg.dimensions is not None and not (1 <= cfg.dimensions <= (width or cfg.dimensions)):
            raise ValueError(f"local.dimensions={cfg.dimensions} must be between 1 and the model's {width}")
        self.dimensions = cfg.dimensions or width or None

    # -- embeddings ---------------------------------------------------------------------------
    def format_query(self, query: str) -> str:
        """The text actually embedded for a query (after preprocessing)."""
        query = self._prep(query)
        return embedding_text(embedding_query(query, self.cfg.task), self.cfg.strip_prompt)

    def format_document(self, document: str) -> str:
        """The text actually embedded for a document (after preprocessing)."""
        return embedding_text(self._prep(document), self.cfg.strip_prompt)

    def embed(self, texts: Sequence[str], is_query: bool = False) -> np.ndarray:
        """(n, d) float32 embeddings as configured (pooling, ``dimensions``, ``normalize``).

        Queries get the instruction; both get the text preprocessing. These are the vectors the
        scores are computed from (normalised first when ``normalize`` is off).
        """
        prepared = [self.format_query(t) if is_query else self.format_document(t) for t in texts]
        return self._embed_prepared(prepared)

    def _embed_prepared(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        rows = self.tokenizer(list(texts), padding=False, truncation=True, max_length=self.cfg.max_length,
                              return_attention_mask=False)["input_ids"]  # fmt: skip
        batches = plan_batches([len(r) for r in rows], self.cfg.batch_size, self.cfg.max_batch_tokens)
        out: np.ndarray | None = None
        with torch.inference_mode():
            for batch in batches:
                ids, mask = pad([rows[i] for i in batch], self._pad_id(), self.padding_side)
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                vectors = self._finish(pool(hidden, mask, self.pooling).float()).cpu().numpy()
                if out is None:
                    out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
        assert out is not None
        return out

    def _finish(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.cfg.dimensions is not None:
            vectors = vectors[:, : self.cfg.dimensions]
        if self.cfg.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors

    # -- Scorer contract ----------------------------------------------------------------------
    def _encode(self, pairs):  # pragma: no cover - embeddings do not encode pairs
        raise NotImplementedError

    def _forward(self, input_ids, attention_mask):  # pragma: no cover
        raise NotImplementedError

    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        """Cosine similarity per (query, document); texts are embedded once per chunk of groups."""
        out: list[np.ndarray] = []
        chunk: list[QueryGroup] = []
        budget = max(64, 16 * self.cfg.batch_size)  # pairs per chunk: batching across groups, with progress
        for group in groups:
            chunk.append(group)
            if sum(len(g.documents) for g in chunk) >= budget:
                out.extend(self._score_chunk(chunk, progress))
                chunk = []
        if chunk:
            out.extend(self._score_chunk(chunk, progress))
        return out

    def _score_chunk(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None) -> list[np.ndarray]:
        queries = [self.format_query(g.query) for g in groups]
        docs = [[self.format_document(d) for d in g.documents] for g in groups]
        unique_docs = list(dict.fromkeys(d for ds in docs for d in ds))
        unique_queries = list(dict.fromkeys(queries))
        vectors = self._embed_prepared(unique_queries + unique_docs)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        q_index = {q: i for i, q in enumerate(unique_queries)}
        d_index = {d: len(unique_queries) + i for i, d in enumerate(unique_docs)}
        result = []
        for query, ds in zip(queries, docs):
            q = vectors[q_index[query]].astype(np.float64)
            d = vectors[[d_index[x] for x in ds]].astype(np.float64)
            result.append(d @ q if ds else np.empty(0, dtype=np.float64))
        if progress is not None:
            progress(sum(len(ds) for ds in docs))
        return result

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {
            "pooling": self.pooling.value,
            "query_template": None if self.cfg.task is None else QUERY_TEMPLATE,
            "task": self.cfg.task,
            "dimensions": self.cfg.dimensions,
            "normalize": self.cfg.normalize,
        }
