"""Score calibration pipeline: make local reranker/embedding scores agree with a hosted API.

Kept import-free on purpose: ``pipeline.inference`` is imported by production code next to the
models and must not pull Hydra, scikit-learn, torch or transformers through this package.
"""

__version__ = "0.1.0"
