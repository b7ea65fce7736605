"""``python -m pipeline serve``: one local model with its exported calibrator behind SiliconFlow's
wire format, so a client swaps the hosted API for the local service by changing its base URL.

* ``config``: the ``serve`` config section (import-light: the Hydra schema imports it);
* ``service``: loads and verifies the artifact, rebuilds the local scorer(s) it was fitted on,
  and says whether they match (readiness);
* ``batcher``: dynamic batching of concurrent requests into full model calls;
* ``app``: the FastAPI routes (``/v1/rerank``, ``/v1/embeddings``, ``/health``, ``/ready``).
"""
