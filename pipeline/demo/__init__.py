"""The offline demo: a bundled dataset, a small trained Qwen3-architecture reranker (two
revisions) and a loopback reference server that speaks SiliconFlow's rerank wire format.

Together they let ``dvc repro`` run the whole pipeline on real model output with no network:
dataset -> train -> resolve -> collect (local + reference) -> fit/export.
"""
