"""pipeline.runtime.text: each switch does exactly what it promises, on Chinese, English, mixed, code, formulas."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.runtime.text import ALGORITHM_VERSION, TextConfig, describe, is_identity, preprocess

SWITCHES = [f.name for f in fields(TextConfig)]
ALL_ON = TextConfig(**{name: True for name in SWITCHES})
LAYOUT_SAFE = replace(ALL_ON, collapse_whitespace=False)

CODE = (
    "def area(r: float) -> float:\n"
    '    """Circle area; "r" in metres."""\n'
    "    if r < 0:\n"
    "        raise ValueError('negative radius: %s' % r)\n"
    "\treturn 3.14159 * r ** 2  # tab-indented on purpose\n"
    "\n"
    "x = [1, -2, 3]  ;  y = {'a': x}\n"
)


def cfg(**on: bool) -> TextConfig:
    return TextConfig(**on)


def test_default_is_identity():
    text = "  “Ｈｅｌｌｏ”，\u3000世界\u200b…  \r\n"
    assert preprocess(text) == text
    assert preprocess(text, TextConfig()) == text
    assert is_identity(None) and is_identity(TextConfig()) and not is_identity(cfg(quotes=True))


@pytest.mark.parametrize(
    "switches, text, expected",
    [
        # English
        (dict(quotes=True), "He said “don’t” and ‘ok’ „low“", 'He said "don\'t" and \'ok\' "low"'),
        (dict(dashes=True), "2019–2020 — a well‑known range − 1", "2019-2020 - a well-known range - 1"),
        (dict(whitespace=True), "\n\nline one  \r\nline\u00a0two\t\r\n\n", "line one\nline two"),
        (dict(collapse_whitespace=True), " a \n\n b\t c ", "a b c"),
        (dict(invisible=True), "zero\u200bwidth soft\u00adhyphen\ufeff bell\x07", "zerowidth softhyphen bell"),
        # Chinese
        (dict(fullwidth=True), "你好，世界！（测试）：１２３ＡＢＣ", "你好,世界!(测试):123ABC"),
        (dict(fullwidth=True), "逗号、句号。书名《红楼梦》「引号」", "逗号、句号。书名《红楼梦》「引号」"),
        (dict(whitespace=True), "中文\u3000全角空格  ", "中文 全角空格"),
        (dict(quotes=True), "他说：“你好”，‘好的’", "他说：\"你好\"，'好的'"),
        (dict(nfkc=True), "ＡＢＣ，１２３", "ABC,123"),
        # mixed
        (dict(fullwidth=True, quotes=True, whitespace=True), "“Ｈｅｌｌｏ”，世界　", '"Hello",世界'),
        (dict(nfkc=True), "Python３.１２版本ﬁx…", "Python3.12版本fix..."),
    ],
)
def test_switches(switches, text, expected):
    assert preprocess(text, cfg(**switches)) == expected


def test_each_switch_leaves_other_characters_alone():
    text = "“q” — Ｘ\u200b\u00a0 x²"
    assert preprocess(text, cfg(quotes=True)) == '"q" — Ｘ\u200b\u00a0 x²'
    assert preprocess(text, cfg(dashes=True)) == "“q” - Ｘ\u200b\u00a0 x²"
    assert preprocess(text, cfg(fullwidth=True)) == "“q” — X\u200b\u00a0 x²"
    assert preprocess(text, cfg(invisible=True)) == "“q” — Ｘ\u00a0 x²"


def test_code_survives_every_layout_safe_switch():
    assert preprocess(CODE, LAYOUT_SAFE) == CODE.rstrip("\n")  # only the final newline goes


def test_code_keeps_indentation_and_inner_spaces_under_whitespace():
    out = preprocess("    a  =  1   \n\tb = 2\t\n", cfg(whitespace=True))
    assert out == "    a  =  1\n\tb = 2"


def test_collapse_whitespace_destroys_code_layout_as_documented():
    out = preprocess(CODE, cfg(collapse_whitespace=True))
    assert "\n" not in out and "    " not in out
    assert out.startswith('def area(r: float) -> float: """Circle area;')


def test_code_with_typographic_characters_changes_only_them():
    code = "print(“hi”)  # it’s 5–3\n"
    assert preprocess(code, cfg(quotes=True)) == 'print("hi")  # it\'s 5–3\n'
    assert preprocess(code, cfg(quotes=True, dashes=True, whitespace=True)) == 'print("hi")  # it\'s 5-3'


@pytest.mark.parametrize(
    "formula",
    ["E = mc^2", "a_1 + a_2 = sum(a_i)", "f′(x) = 2x", "∫₀¹ x² dx = ⅓", "x ≤ y ≠ z", "α·β → γ", "\\frac{1}{2}"],
)
def test_formulas_survive_everything_but_nfkc(formula):
    assert preprocess(formula, replace(LAYOUT_SAFE, nfkc=False)) == formula


def test_nfkc_rewrites_formulas_as_documented():
    assert preprocess("E = mc²", cfg(nfkc=True)) == "E = mc2"
    assert preprocess("∫₀¹ x² dx = ⅓", cfg(nfkc=True)) == "∫01 x2 dx = 1⁄3"
    assert preprocess("①", cfg(nfkc=True)) == "1"


def test_minus_sign_becomes_hyphen_minus_with_dashes():
    assert preprocess("x − 1 ≥ −2", cfg(dashes=True)) == "x - 1 ≥ -2"


def test_primes_are_not_quotes():
    assert preprocess("f′(x) and 5′11″", cfg(quotes=True)) == "f′(x) and 5′11″"


def test_describe_records_settings_and_versions():
    d = describe(cfg(nfkc=True, quotes=True))
    assert d["nfkc"] is True and d["quotes"] is True and d["whitespace"] is False
    assert d["version"] == ALGORITHM_VERSION
    assert d["unicode"] == unicodedata.unidata_version
    assert "unicode" not in describe(TextConfig())
    assert describe(None) == describe(TextConfig())


@settings(max_examples=300, deadline=None)
@given(text=st.text(), switches=st.fixed_dictionaries({name: st.booleans() for name in SWITCHES}))
def test_idempotent(text, switches):
    c = TextConfig(**switches)
    once = preprocess(text, c)
    assert preprocess(once, c) == once


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.rstrip),
        max_size=8,
    )
)
def test_printable_ascii_without_trailing_space_is_untouched(lines):
    text = "\n".join(lines).strip("\n")
    assert preprocess(text, LAYOUT_SAFE) == text


def test_importable_without_numpy_or_torch():
    code = (
        "import sys; import pipeline.runtime.text as t; t.preprocess('x', t.TextConfig(nfkc=True));"
        "bad = [m for m in ('numpy', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).parents[2]))
