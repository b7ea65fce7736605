"""Test doubles the tests and the benchmarks share (never imported by the pipeline itself):
tiny Qwen3-architecture models with random weights, plain-Python reference implementations of
the model card's scoring, and a fake SiliconFlow-dialect API with fault injection on loopback.
They need the ``[all]`` extras (torch, transformers, uvicorn)."""
