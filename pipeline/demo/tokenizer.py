"""A small byte-level BPE tokenizer shaped like Qwen's, trained offline on a text corpus.

Qwen tokenizers split text with one pre-tokenizer regex, map bytes to printable characters
(byte-level BPE), and carry the chat special tokens. A tokenizer built here does the same with a
vocabulary of a few thousand merges learnt from the given corpus, so any text (Chinese, code,
formulas) tokenises without unknown tokens, and the reranker prompt tokenises exactly as the
scorer builds it. "yes" and "no" are single tokens (checked): a Qwen3 reranker reads its score
from those two logits. Used by the demo model and by the tests' tiny checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

#: Qwen2/Qwen3 pre-tokenizer split pattern
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_qwen_style_tokenizer(
    corpus: Iterable[str], *, vocab_size: int = 1000, append_eos: bool = False, require_yes_no: bool = True
):
    """A ``PreTrainedTokenizerFast`` with Qwen's special tokens and pre-tokenizer, trained on ``corpus``.

    ``append_eos`` adds a post-processor that appends ``<|endoftext|>`` to every sequence, as
    Qwen3-Embedding's tokenizer does. ``require_yes_no`` checks that "yes" and "no" each encode
    to one token (put them in the corpus).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    if append_eos:
        eos_id = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", eos_id)],
        )  # fmt: skip
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>" if append_eos else "<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    if require_yes_no:
        for word in ("yes", "no"):
            ids = fast.encode(word, add_special_tokens=False)
            if len(ids) != 1 or fast.convert_ids_to_tokens(ids[0]) != word:
                raise ValueError(f"the corpus did not make {word!r} a single token (got {ids}); add it to the corpus")
    return fast
