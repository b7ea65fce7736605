"""``python -m pipeline embed-check``: do two embedding setups give the same vectors?

Local Qwen3-Embedding against the hosted API, or one local configuration against another
(float32 vs bfloat16, two revisions, two poolings), text by text and per category, with the
retrieval each side's vectors produce, as a deployment gate (exit 1 below a minimum cosine).

* ``texts``: the text set (a collect dataset: queries and their documents, with categories);
* ``sides``: what embeds the texts on each side (a local scorer, or the API client + cache);
* ``compare``: cosine/distance statistics, the worst texts, retrieval agreement;
* ``diagnose``: which local variant (no query instruction, another pooling or dtype) reproduces
  the other side, i.e. the cause of a disagreement;
* ``report``: the console table, ``embed_check.json`` and the per-category plot.
"""
