"""Which optional install ("extra") brings which third-party package, and a clear error when one is
missing.

``pip install score-calibration-pipeline`` installs numpy only: enough for ``pipeline.inference``
to load and apply an artifact next to a model in production. Every stage needs more (Hydra and
scikit-learn to fit, torch and transformers to score locally, httpx to call an API, FastAPI to
serve). A stage imported without its extra fails with the extra's name and the pip command, not
with ``No module named 'hydra'``. The table below is the one place that maps imports to extras;
``pyproject.toml`` lists the same packages and a test keeps the two in step.
"""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "score-calibration-pipeline"

#: extra -> the top-level modules it provides (import names, not distribution names)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "fit": ("scipy", "sklearn", "joblib", "hydra", "omegaconf", "pandas", "pyarrow", "matplotlib", "tqdm"),
    "local": ("torch", "transformers", "tokenizers", "safetensors"),
    "api": ("httpx",),
    "serve": ("fastapi", "uvicorn"),
    "dvc": ("dvc",),
    "ray": ("ray",),
}

#: extras that install others (pyproject.toml lists them as ``score-calibration-pipeline[...]``)
INCLUDES: dict[str, tuple[str, ...]] = {"serve": ("fit", "local"), "dvc": ("fit", "local", "api")}

#: top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {module: extra for extra, modules in EXTRA_MODULES.items() for module in modules}


class MissingExtraError(ImportError):
    """A stage was imported without the optional dependencies it needs; the message says which
    extra to install."""


def install_hint(*extras: str) -> str:
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"


def modules_of(extra: str) -> list[str]:
    """Every module ``extra`` installs, those of the extras it includes first."""
    out: list[str] = []
    for included in INCLUDES.get(extra, ()):
        out += [m for m in modules_of(included) if m not in out]
    return out + [m for m in EXTRA_MODULES[extra] if m not in out]


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (``find_spec`` only: nothing is imported)."""
    return [m for m in modules_of(extra) if importlib.util.find_spec(m) is None]


def require(what: str, *extras: str) -> None:
    """Raise :class:`MissingExtraError` naming the extras ``what`` needs when any of their modules
    is absent. Cheap (a ``find_spec`` per module), so stage modules call it at import time."""
    lacking = {extra: missing_modules(extra) for extra in extras}
    lacking = {extra: modules for extra, modules in lacking.items() if modules}
    if lacking:
        names = sorted(lacking)
        modules = ", ".join(dict.fromkeys(m for extra in names for m in lacking[extra]))
        raise MissingExtraError(
            f"{what} needs the [{','.join(names)}] extra (missing: {modules}); install it with: "
            f"{install_hint(*names)}  (or [all] for every stage)"
        )


def explain(exc: ModuleNotFoundError) -> str | None:
    """The install hint for a ``ModuleNotFoundError`` of a package an extra provides, else None."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return f"the '{top}' package is missing: it comes with the [{extra}] extra; install it with: {install_hint(extra)}"
