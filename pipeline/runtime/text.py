"""Text preprocessing: the one function used at collect time and at inference time.

Scores only agree between the local model and the API when both see the same characters, and a
calibrator fitted on preprocessed text is only valid for preprocessed text. So preprocessing is
one pure function, :func:`preprocess`, driven by :class:`TextConfig`; :func:`describe` records the
settings (plus an algorithm version and, with NFKC on, the Unicode database version, since NFKC
tables change between Python releases) in scorer fingerprints and artifact manifests.

Every switch is off by default: the text the dataset holds is the text the models see. Each
switch promises exactly one kind of change, applied in this order:

``invisible``
    Delete zero-width space (U+200B), word joiner (U+2060), byte-order mark (U+FEFF), soft
    hyphen (U+00AD) and control characters other than tab, newline and carriage return. Runs
    first so the later steps see clean text (a soft hyphen between a letter and a combining mark
    would otherwise block NFKC composition).
``nfkc``
    Unicode NFKC. Folds full-width forms, ligatures, compatibility spaces and the ellipsis, but
    also rewrites superscripts/subscripts (``x²`` -> ``x2``), circled digits (``①`` -> ``1``),
    vulgar fractions (``½`` -> ``1⁄2``) and symbols such as ``™``: it can change the meaning of
    formulas. Prefer ``fullwidth`` when only full-width forms are the problem.
``fullwidth``
    Full-width ASCII forms (U+FF01..U+FF5E: letters, digits, punctuation such as ``，！：（）``)
    become their ASCII counterparts, the ideographic space U+3000 becomes a space. CJK
    punctuation without an ASCII twin (``、。「」《》``) is left alone.
``quotes``
    Curly, low-9 and reversed quotation marks and the full-width quotes become ASCII ``'`` and
    ``"``. Primes (``′ ″``, as in ``f′(x)``) and CJK corner brackets are left alone.
``dashes``
    Hyphen, non-breaking hyphen, figure/en/em dashes, horizontal bar and the minus sign
    (U+2010..U+2015, U+2212) become ASCII ``-``.
``whitespace``
    Layout-preserving clean-up: line endings become ``\\n``; Unicode space separators (no-break,
    en/em/thin spaces, U+3000, ...) become an ASCII space; trailing spaces and tabs at the end of
    every line are removed; blank lines at the start and end of the text are dropped.
    Indentation, tabs inside lines, runs of spaces inside lines and blank lines between
    paragraphs are kept, so source code keeps its meaning (except trailing spaces inside a
    multi-line string literal).
``collapse_whitespace``
    Every run of whitespace, newlines included, becomes one space and the text is stripped. This
    is what many prose pipelines do; it destroys the line structure and indentation of code (and
    Python's meaning with it). Implies the ``whitespace`` mapping of Unicode spaces.

Text made only of printable ASCII without trailing spaces (most source code) comes out unchanged
under every switch except ``collapse_whitespace``.

Pure Python (``unicodedata``, ``re``): importable without numpy or torch.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields

#: bump when the behaviour of any switch changes: it is part of every fingerprint
ALGORITHM_VERSION = 1


@dataclass
class TextConfig:
    """Preprocessing switches (the top-level ``text:`` config); all off by default."""

    invisible: bool = False
    nfkc: bool = False
    fullwidth: bool = False
    quotes: bool = False
    dashes: bool = False
    whitespace: bool = False
    collapse_whitespace: bool = False


_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20

_QUOTES = {
    0x2018: "'", 0x2019: "'", 0x201A: "'", 0x201B: "'", 0xFF07: "'",  # single quotes
    0x201C: '"', 0x201D: '"', 0x201E: '"', 0x201F: '"', 0xFF02: '"',  # double quotes
}  # fmt: skip

_DASHES = {cp: "-" for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212)}

# Unicode space separators (category Zs) other than the ASCII space, plus NEL/LS/PS line breaks
_UNICODE_SPACES = {cp: " " for cp in (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)}
_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
_TRAILING = re.compile(r"[ \t\f\v]+(?=\n|\Z)")
_ANY_WHITESPACE = re.compile(r"\s+")


def _whitespace(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text).translate(_UNICODE_SPACES)
    text = _TRAILING.sub("", text)
    return text.strip("\n")


def preprocess(text: str, cfg: TextConfig | None = None) -> str:
    """Apply the switches of ``cfg`` to ``text`` (``None`` or all switches off: unchanged).

    >>> preprocess("“Ｈｅｌｌｏ”，世界　", TextConfig(fullwidth=True, quotes=True, whitespace=True))
    '"Hello",世界'
    """
    if cfg is None:
        return text
    if cfg.invisible:
        text = _INVISIBLE.sub("", text)
    if cfg.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if cfg.fullwidth:
        text = text.translate(_FULLWIDTH)
    if cfg.quotes:
        text = text.translate(_QUOTES)
    if cfg.dashes:
        text = text.translate(_DASHES)
    if cfg.whitespace or cfg.collapse_whitespace:
        text = _whitespace(text)
    if cfg.collapse_whitespace:
        text = _ANY_WHITESPACE.sub(" ", text).strip()
    return text


def is_identity(cfg: TextConfig | None) -> bool:
    """True when ``cfg`` changes nothing (lets callers skip a pass over large corpora)."""
    return cfg is None or not any(getattr(cfg, f.name) for f in fields(cfg))


def describe(cfg: TextConfig | None) -> dict:
    """The settings as a plain dict, recorded in fingerprints and manifests."""
    out: dict = asdict(cfg if cfg is not None else TextConfig())
    out["version"] = ALGORITHM_VERSION
    if out["nfkc"]:
        out["unicode"] = unicodedata.unidata_version
    return out
