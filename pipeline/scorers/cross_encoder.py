"""Cross-encoder: ``AutoModelForSequenceClassification`` with one logit per (query, document).

For classic cross-encoders (bge-reranker-v2-m3, ms-marco MiniLM, ...) use ``template=none``: the
tokenizer's own pair encoding (``[CLS] q [SEP] d [SEP]`` or its dialect), right padding,
``longest_first`` truncation, as sentence-transformers' CrossEncoder and FlagEmbedding do.

Seq-cls conversions of Qwen3 rerankers (a one-row ``score`` head = W_yes - W_no) need the Qwen3
prompt: use ``template=official`` (or ``vllm``) and ``activation=sigmoid``; the score is then
the same P(yes) as ``kind=qwen3_reranker`` on the original checkpoint. Decoder models pad left so
the classifier's last-token read is the last real token.

Qwen2/Qwen3 classifiers (unless ``attn_implementation`` asks for a transformers kernel) run like
``kind=qwen3_reranker``: packed without padding, the call's shared prompt prefix once
(:mod:`pipeline.scorers.packing`), the ``score`` head applied to each row's last token only.
transformers' classifier reads the rightmost token that is not the pad token, so each row is cut
after that token first (what follows it cannot change it in a causal model): same value, fewer
tokens.

Long documents (``local.max_chunks_per_doc``, template ``none`` only): split into chunks that fit
beside the query, overlapping by ``local.overlap_tokens``, the document scored by its best chunk,
as SiliconFlow documents for bge-reranker-v2-m3 and bce-reranker-base_v1. The chunk length (what
fits in ``local.max_length``) is this project's assumption, unverified against the hosted API.

Loading a causal-LM checkpoint (such as the original Qwen3-Reranker) here would attach an
untrained ``score`` head; that is refused with a pointer to ``kind=qwen3_reranker``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pipeline.config.local import Activation, LocalScorerConfig, Template
from pipeline.runtime.text import TextConfig
from pipeline.scorers.hf import TransformersScorer
from pipeline.scorers.loading import ScorerLoadError, architectures, load_config, load_model, load_tokenizer
from pipeline.scorers.packing import packed_runner, register
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION, PromptEncoder


class CrossEncoderScorer(TransformersScorer):
    kind = "cross_encoder"

    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> None:
        super().__init__(cfg, text_cfg)
        cfg = self.cfg  # coerced: Enums even when built in code with strings
        from transformers import AutoModelForSequenceClassification

        self.activation = Activation(cfg.activation)
        self.score_type = "probability" if self.activation is Activation.sigmoid else "logit"
        hf_config = load_config(self.source, cfg)
        arch = architectures(hf_config)
        if any(a.endswith("ForCausalLM") for a in arch):
            raise ScorerLoadError(
                f"{cfg.model} is a causal-LM checkpoint ({', '.join(arch)}): as a sequence classifier its "
                "score head would be newly initialised (random scores). For Qwen3-Reranker use "
                "local.kind=qwen3_reranker; for a cross-encoder use a seq-cls checkpoint"
            )
        # decoder classifiers read the last non-pad token (either side works; left mirrors
        # qwen3_reranker), encoders read the first token and conventionally pad right
        self.is_decoder = getattr(hf_config, "model_type", "") in _DECODER_TYPES
        self.padding_side = "left" if self.is_decoder else "right"
        self.tokenizer = load_tokenizer(self.source, cfg, padding_side=self.padding_side)
        self.template = Template(cfg.template)
        self.prompt = PromptEncoder(
            self.tokenizer,
            self.template,
            cfg.instruction or DEFAULT_INSTRUCTION,
            cfg.max_length,
            strip_prompt=cfg.strip_prompt,
        )
        model = load_model(
            AutoModelForSequenceClassification,
            self.source,
            cfg,
            instead="Use a checkpoint trained for sequence classification (or local.kind=qwen3_reranker "
            "for original Qwen3-Reranker checkpoints).",
        )
        if model.config.num_labels != 1:
            raise ScorerLoadError(
                f"{cfg.model} has {model.config.num_labels} labels; kind=cross_encoder expects one relevance logit"
            )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = self._pad_id()  # decoder classifiers find the last token by it
        self.model = model.to(self.device).eval()
        self.packed = (
            getattr(hf_config, "model_type", "") in _PACKED_TYPES
            and cfg.attn_implementation in (None, "", "sdpa")
            and isinstance(getattr(model, "score", None), torch.nn.Linear)
        )
        if self.packed:
            self.model.set_attn_implementation(register())
        self.segment_sep_id = self._segment_separator(model)

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        rows = self.prompt.encode(pairs)
        if self.packed:
            pad_id = self.model.config.pad_token_id
            rows = [through_last_non_pad(row, pad_id) for row in rows]
        return rows

    def _segment_separator(self, model) -> int | None:
        """The separator token after which a pair's second segment starts, for encoders that embed
        two segments (BERT-style: ``type_vocab_size`` 2, the tokenizer's pair encoding returns
        ``token_type_ids`` 0 for ``[CLS] q [SEP]`` and 1 for ``d [SEP]``); None for everything
        else (XLM-R/bge-reranker-v2-m3, decoders), whose single segment is the model's default."""
        if self.is_decoder or getattr(model.config, "type_vocab_size", 1) < 2 or self.template is not Template.none:
            return None
        probe = self.tokenizer("a", "b")
        sep = getattr(self.tokenizer, "sep_token_id", None)
        if sep is None or 1 not in probe.get("token_type_ids", []):
            return None
        return int(sep)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.segment_sep_id is not None:
            extra["token_type_ids"] = segment_ids(input_ids, attention_mask, self.segment_sep_id)
        return self._activate(self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits[:, 0])

    def _batch_runner(self, rows: Sequence[Sequence[int]]):
        if not self.packed:
            return super()._batch_runner(rows)
        return packed_runner(
            self.model.base_model, rows, self.device, lambda h: self._activate(self.model.score(h)[:, 0])
        )

    # -- long documents (local.max_chunks_per_doc) ----------------------------------------------
    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress=None):
        """With ``max_chunks_per_doc`` set, each document is scored by its best chunk (see
        :meth:`chunk_rows`); otherwise the pair encoding truncates it, as before."""
        if self.cfg.max_chunks_per_doc is None or not pairs:
            return super().score_pairs(pairs, progress)
        return self.score_chunked(pairs, self.cfg.max_chunks_per_doc, self.cfg.overlap_tokens, progress)

    def score_long(self, groups, max_chunks: int, overlap: int):
        """:meth:`score` with chunking as given (``serve`` passes a request's own
        ``max_chunks_per_doc``/``overlap_tokens``): one array per group, in document order."""
        pairs = [(self._prep(g.query), self._prep(d)) for g in groups for d in g.documents]
        flat = self.score_chunked(pairs, max_chunks, overlap) if pairs else []
        out, start = [], 0
        for g in groups:
            out.append(flat[start : start + len(g.documents)])
            start += len(g.documents)
        return out

    def score_chunked(self, pairs: Sequence[tuple[str, str]], max_chunks: int, overlap: int, progress=None):
        """Scores of ``pairs``, each document the max over its chunks' scores (``serve`` passes a
        request's own ``max_chunks_per_doc``/``overlap_tokens`` here)."""
        import numpy as np

        rows, owner = [], []
        for i, (query, document) in enumerate(pairs):
            for row in self.chunk_rows(query, document, max_chunks, overlap):
                rows.append(row)
                owner.append(i)
        values = self._score_rows(rows)
        scores = np.full(len(pairs), -np.inf)
        np.maximum.at(scores, np.asarray(owner), values)
        if progress is not None:
            progress(len(pairs))
        return scores

    def chunk_rows(self, query: str, document: str, max_chunks: int, overlap: int) -> list[list[int]]:
        """Token rows of (query, chunk) for each chunk of ``document``.

        A chunk is as many document tokens as fit beside the query and the pair's special tokens
        in ``local.max_length``; consecutive chunks share ``overlap`` tokens; only the first
        ``max_chunks`` are kept (the rest of a very long document is not scored). A document that
        fits is one row, the same tokens as without chunking. This chunk length is an
        assumption: SiliconFlow documents the fields, not how it cuts.
        """
        tok = self.tokenizer
        if self.cfg.strip_prompt:  # as the unchunked template=none encoding does
            query, document = query.strip(), document.strip()
        q_ids = tok.encode(query, add_special_tokens=False)
        d_ids = tok.encode(document, add_special_tokens=False)
        room = self.cfg.max_length - tok.num_special_tokens_to_add(pair=True) - len(q_ids)
        if room <= overlap or len(d_ids) <= room:  # fits, or a query too long to chunk beside: truncate
            return self._encode([(query, document)])
        head, middle, tail = self._pair_layout()
        rows, start = [], 0
        while len(rows) < max_chunks:
            rows.append([*head, *q_ids, *middle, *d_ids[start : start + room], *tail])
            if start + room >= len(d_ids):
                break
            start += room - overlap
        if self.packed:
            rows = [through_last_non_pad(row, self.model.config.pad_token_id) for row in rows]
        return rows

    def _pair_layout(self) -> tuple[list[int], list[int], list[int]]:
        """The special tokens the tokenizer's pair encoding puts before, between and after the two
        sequences (``[CLS] q [SEP] d [SEP]``, ``<s> q </s></s> d </s>``, nothing for Qwen), read
        off the encoding of a probe pair."""
        if not hasattr(self, "_layout"):
            tok = self.tokenizer
            a, b = tok.encode("a", add_special_tokens=False), tok.encode("b", add_special_tokens=False)
            ids = list(tok("a", "b")["input_ids"])
            i = next(k for k in range(len(ids)) if ids[k : k + len(a)] == a)
            j = next(k for k in range(i + len(a), len(ids)) if ids[k : k + len(b)] == b)
            self._layout = (ids[:i], ids[i + len(a) : j], ids[j + len(b) :])
        return self._layout

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.activation is Activation.sigmoid else logits

    def _fingerprint_extra(self) -> dict[str, Any]:
        fp = {
            "template": self.template.value,
            "instruction": self.prompt.effective_instruction,
            "activation": self.activation.value,
        }
        if self.segment_sep_id is not None:  # only for two-segment encoders: other fingerprints stay valid
            fp["token_type_ids"] = "pair"
        if self.cfg.max_chunks_per_doc is not None:  # only when set: older fingerprints stay valid
            fp["chunking"] = {
                "max_chunks_per_doc": self.cfg.max_chunks_per_doc,
                "overlap_tokens": self.cfg.overlap_tokens,
            }
        return fp


def segment_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """BERT pair token types for right-padded rows ``[CLS] q [SEP] d [SEP] [PAD]...``: 0 through the
    first separator, 1 after it, 0 on padding -- what the tokenizer's pair encoding returns. (A query
    whose text spells the separator, literally ``[SEP]``, which the tokenizer also reads as the
    special token, would switch segments early; such text is not a real query.)"""
    is_sep = (input_ids == sep_id).long()
    seps_before = torch.cumsum(is_sep, dim=1) - is_sep
    return (seps_before > 0).long() * attention_mask.long()


def through_last_non_pad(row: Sequence[int], pad_id: int | None) -> list[int]:
    """``row`` up to and including the token transformers' decoder classifiers read: the rightmost
    one that is not ``pad_id`` (position 0 when every token is ``pad_id``)."""
    end = len(row)
    if pad_id is not None:
        while end > 1 and row[end - 1] == pad_id:
            end -= 1
    return list(row[:end])


# decoder classifiers that run packed (their attention goes through transformers' AttentionInterface
# and passes keyword arguments through; tested on Qwen3)
_PACKED_TYPES = {"qwen2", "qwen3"}

# decoder-only families whose classifier reads the last non-pad token
_DECODER_TYPES = {"qwen2", "qwen3", "qwen3_moe", "llama", "mistral", "gemma", "gemma2", "gemma3", "phi3", "gpt2"}
