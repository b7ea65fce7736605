"""Documentation that is tested, not copied: every output quoted in README.md and docs/*.md under
an ``<!-- output: <command> -->`` marker is what that command prints today, in a fresh clone of
this repository after ``dvc repro`` (the committed demo).

Marker syntax, on the line before a fenced block::

    <!-- output: python -m pipeline fit -->
    <!-- output (exit 1): python -m pipeline embed-check embed_check.other.pooling=cls -->

The block is matched like a doctest with ELLIPSIS: a line that is only ``...`` stands for any
number of printed lines, ``...`` inside a line for any text (timings, paths). Progress bars are
ignored. Only stdout is compared (warnings and progress go to stderr). ``a && b`` runs ``a``
first and quotes ``b``. A quoted command whose output changed fails here, naming the file and the
line.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- output(?: \(exit (\d+)\))?: (.+?) -->\s*$")
#: tqdm bars and transformers' weight-loading bars: not part of what a doc quotes
PROGRESS = re.compile(r"(\d+%\|)|(\r)")


@dataclass(frozen=True)
class Quoted:
    file: str
    line: int
    command: str
    exit_code: int
    expected: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.command}"


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]


def quoted_outputs() -> list[Quoted]:
    found = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = MARKER.match(line)
            if not match:
                continue
            assert lines[i + 1].startswith("```"), f"{path.name}:{i + 1}: an output marker must precede a fenced block"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            found.append(
                Quoted(
                    str(path.relative_to(REPO)),
                    i + 1,
                    match.group(2),
                    int(match.group(1) or 0),
                    "\n".join(lines[i + 2 : end]),
                )
            )
    return found


def _pattern(line: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(part) for part in line.rstrip().split("...")) + "$")


def matches(expected: str, printed: str) -> str | None:
    """None when ``printed`` fits ``expected`` (doctest ELLIPSIS rules), else the first expected
    line that could not be placed."""
    want = expected.splitlines()
    got = [line.rstrip() for line in printed.splitlines() if not PROGRESS.search(line)]

    def fit(w: int, g: int) -> bool:
        if w == len(want):
            return g == len(got)
        if want[w].strip() == "...":
            return any(fit(w + 1, k) for k in range(g, len(got) + 1))
        return g < len(got) and bool(_pattern(want[w]).match(got[g])) and fit(w + 1, g + 1)

    if fit(0, 0):
        return None
    for line in want:  # the first expected line that appears nowhere, for the message
        if line.strip() != "..." and not any(_pattern(line).match(g) for g in got):
            return line
    return "(the lines exist but not in this order or count)"


def test_the_matcher_follows_doctest_ellipsis_rules():
    assert matches("a\n...\nd", "a\nb\nc\nd") is None
    assert matches("a ... z", "a 12.3s z") is None
    assert matches("a\nd", "a\nb\nd") == "(the lines exist but not in this order or count)"
    assert matches("a\nx", "a\nb") == "x"
    assert matches("a", "a\nLoading weights: 100%|####| 25/25") is None


def test_every_marker_precedes_a_block_and_names_a_pipeline_command():
    quoted = quoted_outputs()
    assert quoted, "no quoted outputs found"
    for q in quoted:
        assert q.command.startswith(("python -m pipeline ", "python ")), q


@pytest.mark.integration  # DVC and git: the fresh clone runs `dvc repro`
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("quoted", quoted_outputs(), ids=str)
def test_quoted_output_is_what_the_command_prints(quoted, fresh_clone):
    args = shlex.split(quoted.command)
    assert args[0] == "python"
    printed = ""
    for command in quoted.command.split(" && "):  # setup steps, then the command whose stdout is quoted
        args = shlex.split(command)
        assert args[0] == "python", quoted
        proc = subprocess.run(
            [sys.executable, *args[1:]],
            cwd=fresh_clone.root,
            env=fresh_clone.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        printed = proc.stdout
    assert proc.returncode == quoted.exit_code, (
        f"{quoted}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    missing = matches(quoted.expected, printed)
    assert missing is None, (
        f"{quoted}: this quoted line is not what it prints now:\n  {missing}\n--- printed:\n{printed}"
    )


def test_the_demo_figures_in_the_docs_are_the_committed_reports():
    """Figures quoted in prose and tables of docs/demo-pipeline.md, not printed by one command:
    NDCG@10 of the demo model (reports/demo-model/report.json) and the demo's raw/calibrated
    agreement (reports/demo/)."""
    import json

    readme = (REPO / "docs" / "demo-pipeline.md").read_text(encoding="utf-8")
    model = json.loads((REPO / "reports/demo-model/report.json").read_text())["revisions"]

    def cell(q: dict) -> str:
        return f"{q['ndcg']:.3f} [{q['ci_low']:.3f}, {q['ci_high']:.3f}]"

    assert f"| random order | {cell(model['v1']['random'])} |" in readme
    for revision in ("v1", "v2"):
        assert f"| {revision} | {cell(model[revision]['model'])} |" in readme, revision
    configs = json.loads((REPO / "reports/demo/metrics.json").read_text())["configurations"]
    raw, cal = (
        {k: m["value"] for k, m in configs[row]["metrics"].items()} for row in ("raw local", "calibrated local")
    )
    assert (
        f"raw agreement on the demo is Pearson {raw['pearson']:.3f}, per-query Spearman {raw['spearman']:.3f} and "
        f"MAE {raw['mae']:.3f}"
    ) in " ".join(readme.split())
    assert f"(MAE {raw['mae']:.3f} -> {cal['mae']:.3f}, Pearson {cal['pearson']:.3f})" in " ".join(readme.split())


@pytest.mark.integration  # DVC and git: the fresh clone runs `dvc repro`
def test_the_serve_example_prints_what_the_docs_show(fresh_clone):
    """docs/serve.md's client snippet, run as pasted (but for the port) against `serve` on the demo
    artifact of a fresh clone: the quoted output is what it prints, and each score is
    load_calibrator(artifact) applied to the local model's own score of that text."""
    import contextlib
    import io

    import numpy as np

    from pipeline.inference import load_calibrator
    from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
    from tests.serve.cli import serve_process

    readme = (REPO / "docs" / "serve.md").read_text(encoding="utf-8")
    at = readme.index("<!-- serve example -->")
    code = readme[readme.index("```python\n", at) + 10 : readme.index("\n```", at + 30)]
    after = readme.index("```text\n", at + len(code)) + 8
    expected = readme[after : readme.index("\n```", after)]
    with serve_process(["--params", "params.yaml"], fresh_clone.root, fresh_clone.env) as (_, url):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code.replace("http://127.0.0.1:8000", url), "docs/serve.md", "exec"), {})
    assert matches(expected, printed.getvalue()) is None, printed.getvalue()

    import ast

    # the request body: the literal passed as json= (found in the syntax tree, however it is wrapped)
    (body_node,) = [
        k.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) for k in n.keywords if k.arg == "json"
    ]
    body = ast.literal_eval(body_node)
    with build_scorer(
        LocalScorerConfig(model=str(fresh_clone.root / "models/demo-reranker/v1"), device="cpu")
    ) as scorer:
        (local,) = scorer.score([QueryGroup(body["query"], body["documents"])])
    calibrated = load_calibrator(fresh_clone.root / "artifacts/calibrators/demo")(local)
    shown = {int(i): float(v) for i, v in (line.split() for line in printed.getvalue().splitlines())}
    assert np.allclose([shown[i] for i in range(len(local))], np.round(calibrated, 4), atol=1e-4)
    assert calibrated[1] > calibrated[0]  # the answer outranks the unrelated text


# --- every command line on the pages composes ---------------------------------------------------
#
# A docs command is `python -m pipeline <stage> [args]` or `dvc exp run ... -S key=value ...`, found
# in three places: the lines of ```bash blocks (a trailing `\` joins the next line; `#` starts a
# comment; `&&`, `;` and `|` end a command), `<!-- output: ... -->` markers, and inline code spans
# that start with `python -m pipeline `. Blocks of other languages are not read: a ```text block
# quotes what a command prints, so a command shown failing on purpose (`$ python -m pipeline fit
# evaluate.n_splits=1`) is written there.
#
# Each argument becomes an override the way the CLI turns it into one (`--dry-run` is
# `collect.dry_run=true`, `--apply` is `align.apply=true`; `--params FILE`, `--print-config` and
# `--help` do not change what is composed). Skipped, because they stand for the reader's own value:
# an argument that is `...`, one holding a `<placeholder>` (`local.revision=<commit>`), and one
# holding a shell variable (`collect.cache=$HOME/...`); a command whose stage is a placeholder
# (`python -m pipeline <stage> --help`) is a synopsis and is skipped whole. Anything else that is
# not `key=value`, `~key` or a known flag is an error: a doc would be showing a command the CLI
# refuses.

FLAG_OVERRIDES = {"--dry-run": "collect.dry_run=true", "--apply": "align.apply=true"}
NO_OVERRIDE_FLAGS = {"--print-config", "--help", "-h"}
COMMAND_ENDS = {"&&", "||", ";", "|", "&", ">", ">>", "<"}


@dataclass(frozen=True)
class DocCommand:
    file: str
    line: int
    stage: str  # "dvc exp run" for DVC experiments
    overrides: tuple[str, ...]
    problems: tuple[str, ...]  # arguments the CLI would refuse

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.stage} {' '.join(self.overrides)}"


def _placeholder(arg: str) -> bool:
    return arg == "..." or bool(re.search(r"<[^<>\s]+>", arg)) or "$" in arg


def _split_commands(text: str) -> list[list[str]]:
    """Shell words, comments dropped, cut into commands at `&&`, `;`, `|`, ... (written apart from
    the words around them, as the docs do: a `<placeholder>` must stay one word)."""
    commands: list[list[str]] = [[]]
    for token in shlex.split(text, comments=True):
        if token in COMMAND_ENDS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _doc_command(file: str, line: int, tokens: list[str]) -> DocCommand | None:
    """The overrides of one shell command, or None when it is not a pipeline or `dvc exp run` command."""
    from pipeline.stages import STAGES

    overrides: list[str] = []
    flags: list[str] = []  # the CLI appends a flag's override after the key=value ones
    problems: list[str] = []
    if tokens[:3] == ["dvc", "exp", "run"]:
        for flag, value in zip(tokens, tokens[1:]):
            if flag in ("-S", "--set-param") and not _placeholder(value):
                overrides.append(value)
        return DocCommand(file, line, "dvc exp run", tuple(overrides), ())
    if tokens[:3] != ["python", "-m", "pipeline"] or len(tokens) < 4 or tokens[3].startswith("-"):
        return None  # not a pipeline command, or `python -m pipeline --help`
    stage, args = tokens[3], tokens[4:]
    if _placeholder(stage):
        return None  # a synopsis: python -m pipeline <stage> ...
    if stage not in STAGES:
        problems.append(f"unknown stage {stage!r}")
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg == "--params":
            skip_next = True
        elif arg in NO_OVERRIDE_FLAGS or _placeholder(arg):
            continue
        elif arg in FLAG_OVERRIDES:
            if FLAG_OVERRIDES[arg].split(".")[0] != stage:
                problems.append(f"{arg} is not a flag of {stage}")
            flags.append(FLAG_OVERRIDES[arg])
        elif arg.startswith("-") or not ("=" in arg or arg.startswith("~")):
            problems.append(f"not an override: {arg!r}")
        else:
            overrides.append(arg)
    return DocCommand(file, line, stage, tuple(overrides + flags), tuple(problems))


def commands_in(path: Path) -> list[DocCommand]:
    rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[DocCommand] = []
    prose: list[str] = []  # the text outside fenced blocks, line numbers kept

    def add(line: int, text: str) -> None:
        for tokens in _split_commands(text):
            command = _doc_command(rel, line, tokens)
            if command is not None:
                found.append(command)

    fence: str | None = None
    pending, pending_line = "", 0
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip().lower()
            prose.append("")
            continue
        if fence is None:
            prose.append(line)
            marker = MARKER.match(line)
            if marker:
                add(number, marker.group(2))
            continue
        prose.append("")
        if fence in ("bash", "sh", "shell"):
            if not pending:
                pending_line = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            add(pending_line, pending + line)
            pending = ""
    text = "\n".join(prose)
    for span in re.finditer(r"`(python -m pipeline [^`]+)`", text):
        add(text.count("\n", 0, span.start()) + 1, span.group(1).replace("\n", " "))
    return found


def doc_commands() -> list[DocCommand]:
    return [command for path in doc_files() for command in commands_in(path)]


def test_the_command_extractor_reads_every_kind_of_docs_command(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `python -m pipeline fit\ncalibrator=poly` or `python -m pipeline <stage> --help`.\n\n"
        "<!-- output: python -m pipeline collect x=1 && python -m pipeline fit y=2 -->\n```text\nout\n```\n\n"
        "```bash\npython -m pipeline collect --dry-run local.revision=<commit> a.b=1 \\\n"
        "   c.d='two words'   # a comment=1\n"
        "dvc exp run -S e=1 -S collect.cache=$HOME/x && dvc exp show\npython -m pipeline fit --apply\n```\n\n"
        "```text\n$ python -m pipeline fit evaluate.n_splits=1\n```\n",
        encoding="utf-8",
    )
    got = [(c.line, c.stage, c.overrides, c.problems) for c in commands_in(page)]
    assert got == [
        (4, "collect", ("x=1",), ()),
        (4, "fit", ("y=2",), ()),
        (10, "collect", ("a.b=1", "c.d=two words", "collect.dry_run=true"), ()),
        (12, "dvc exp run", ("e=1",), ()),
        (13, "fit", ("align.apply=true",), ("--apply is not a flag of fit",)),
        (1, "fit", ("calibrator=poly",), ()),
    ], got


def test_the_docs_commands_include_every_kind():
    commands = doc_commands()
    stages = {c.stage for c in commands}
    assert {"collect", "fit", "check", "align", "serve", "embed-check", "params", "dvc exp run"} <= stages, stages
    assert len(commands) >= 50, len(commands)


@pytest.mark.parametrize("command", doc_commands(), ids=str)
def test_every_docs_command_composes(command):
    """Every key of a command on the pages is in the schema and every config group exists: the
    command composes as `python -m pipeline` (or DVC's composer, which validates with the same
    schema) would compose it."""
    from pipeline.config.compose import ConfigError, compose_config

    assert not command.problems, f"{command}: {'; '.join(command.problems)}"
    try:
        compose_config(list(command.overrides))
    except ConfigError as exc:
        pytest.fail(f"{command}: {exc}")


def test_the_documented_way_to_drop_the_demos_minilm_column_drops_it():
    """configuration.md's `~local@collect.extra_local.local_minilm` is a composed docs command, and
    composed it leaves no local_minilm column (which the defaults do add)."""
    from pipeline.config.compose import compose_config

    drop = "~local@collect.extra_local.local_minilm"
    (command, *_) = [c for c in doc_commands() if drop in c.overrides] or [None]
    assert command is not None, f"no docs command uses {drop}"
    assert "local_minilm" in compose_config([]).collect.extra_local
    assert "local_minilm" not in compose_config(list(command.overrides)).collect.extra_local, command


# --- every relative link resolves ----------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def github_anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes for a markdown file: the heading's text (code spans keep
    their text, link markup is dropped), lower-cased, every character that is not a letter, digit,
    `_`, `-` or space removed, spaces turned into `-`; a repeated slug gets `-1`, `-2`, ..."""
    seen: dict[str, int] = {}
    anchors = set()
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        parts = heading.group(1).split("`")  # odd parts are code spans: their text is kept as written
        for i in range(0, len(parts), 2):
            parts[i] = re.sub(r"<[^>]+>", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", parts[i])).replace("*", "")
        text = "".join(parts)
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def links_in(path: Path) -> list[tuple[int, str]]:
    """(line, target) of each markdown link outside fenced blocks and code spans."""
    found = []
    fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if not fence:
            found += [(number, m.group(1)) for m in LINK.finditer(re.sub(r"`[^`]*`", "", line))]
    return found


def broken_links(path: Path) -> list[str]:
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    broken = []
    for line, link in links_in(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", link):
            continue  # https:, mailto:: not a file of this repository
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.is_relative_to(REPO.resolve()) and path.is_relative_to(REPO):
            broken.append(f"{rel}:{line}: {link}: outside the repository")
        elif not file.exists():
            broken.append(f"{rel}:{line}: {link}: no such file")
        elif anchor and (file.suffix != ".md" or anchor not in github_anchors(file)):
            broken.append(f"{rel}:{line}: {link}: no heading with anchor #{anchor} in {file.name}")
    return broken


def test_github_anchors_follow_githubs_slug_rules(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Drift check: `python -m pipeline check`\n## `params.yaml`: what it is\n## Keys\n"
        "```bash\n# not a heading\n```\n## Keys\n### The demo's [second](x.md) <b>column</b>\n"
        "## Calibrators (`calibrator=<family>`)\n",
        encoding="utf-8",
    )
    assert github_anchors(page) == {
        "drift-check-python--m-pipeline-check",
        "paramsyaml-what-it-is",
        "keys",
        "keys-1",
        "the-demos-second-column",
        "calibrators-calibratorfamily",
    }
    page.write_text(
        "[a](page.md#keys) [b](#keys) [c](https://x.org/#y) `[d](nowhere.md)` [e](page.md#nowhere) "
        "[f](missing.md)\n# Keys\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "page.md:1: page.md#nowhere: no heading with anchor #nowhere in page.md",
        "page.md:1: missing.md: no such file",
    ]


def test_every_relative_link_in_the_docs_resolves():
    assert any(links_in(path) for path in doc_files())
    broken = [b for path in doc_files() for b in broken_links(path)]
    assert not broken, "\n".join(broken)
