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
            found.append(Quoted(str(path.relative_to(REPO)), i + 1, match.group(2), int(match.group(1) or 0),
                                "\n".join(lines[i + 2 : end])))
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
    for w, line in enumerate(want):  # the first expected line that appears nowhere, for the message
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


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("quoted", quoted_outputs(), ids=str)
def test_quoted_output_is_what_the_command_prints(quoted, fresh_clone):
    args = shlex.split(quoted.command)
    assert args[0] == "python"
    printed = ""
    for command in quoted.command.split(" && "):  # setup steps, then the command whose stdout is quoted
        args = shlex.split(command)
        assert args[0] == "python", quoted
        proc = subprocess.run([sys.executable, *args[1:]], cwd=fresh_clone.root, env=fresh_clone.env,
                              capture_output=True, text=True, timeout=900)
        printed = proc.stdout
    assert proc.returncode == quoted.exit_code, f"{quoted}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    missing = matches(quoted.expected, printed)
    assert missing is None, f"{quoted}: this quoted line is not what it prints now:\n  {missing}\n--- printed:\n{printed}"


def test_the_demo_figures_in_the_readme_are_the_committed_reports():
    """Figures quoted in prose and tables, not printed by one command: NDCG@10 of the demo model
    (reports/demo-model/report.json) and the demo's raw/calibrated agreement (reports/demo/)."""
    import json

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    model = json.loads((REPO / "reports/demo-model/report.json").read_text())["revisions"]

    def cell(q: dict) -> str:
        return f"{q['ndcg']:.3f} [{q['ci_low']:.3f}, {q['ci_high']:.3f}]"

    assert f"| random order | {cell(model['v1']['random'])} |" in readme
    for revision in ("v1", "v2"):
        assert f"| {revision} | {cell(model[revision]['model'])} |" in readme, revision
    configs = json.loads((REPO / "reports/demo/metrics.json").read_text())["configurations"]
    raw, cal = ({k: m["value"] for k, m in configs[row]["metrics"].items()} for row in ("raw local", "calibrated local"))
    assert (f"raw agreement on the demo is Pearson {raw['pearson']:.3f}, per-query Spearman {raw['spearman']:.3f} and "
            f"MAE {raw['mae']:.3f}") in " ".join(readme.split())
    assert f"(MAE {raw['mae']:.3f} -> {cal['mae']:.3f}, Pearson {cal['pearson']:.3f})" in " ".join(readme.split())


def test_the_serve_example_prints_what_the_readme_shows(fresh_clone):
    """The README's client snippet, run as pasted (but for the port) against `serve` on the demo
    artifact of a fresh clone: the quoted output is what it prints, and each score is
    load_calibrator(artifact) applied to the local model's own score of that text."""
    import contextlib
    import io

    import numpy as np

    from pipeline.inference import load_calibrator
    from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
    from tests.serve.cli import serve_process

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    at = readme.index("<!-- serve example -->")
    code = readme[readme.index("```python\n", at) + 10 : readme.index("\n```", at + 30)]
    after = readme.index("```text\n", at + len(code)) + 8
    expected = readme[after : readme.index("\n```", after)]
    with serve_process(["--params", "params.yaml"], fresh_clone.root, fresh_clone.env) as (_, url):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code.replace("http://127.0.0.1:8000", url), "README.md", "exec"), {})
    assert matches(expected, printed.getvalue()) is None, printed.getvalue()

    namespace: dict = {}
    exec(compile(code.split("response = ")[0], "README.md", "exec"), namespace)  # imports and BASE_URL only
    body = eval(code[code.index("json=") + 5 : code.index("})", code.index("json=")) + 1], namespace)
    with build_scorer(LocalScorerConfig(model=str(fresh_clone.root / "models/demo-reranker/v1"), device="cpu")) as scorer:
        (local,) = scorer.score([QueryGroup(body["query"], body["documents"])])
    calibrated = load_calibrator(fresh_clone.root / "artifacts/calibrators/demo")(local)
    shown = {int(i): float(v) for i, v in (line.split() for line in printed.getvalue().splitlines())}
    assert np.allclose([shown[i] for i in range(len(local))], np.round(calibrated, 4), atol=1e-4)
    assert calibrated[1] > calibrated[0]  # the answer outranks the unrelated text
