"""``align``: find the local scoring configuration that reproduces the API, before calibrating.

A monotone calibrator cannot change the order of documents within a query; most local/API rank
disagreement comes from a different prompt (template, whitespace handling, instruction,
truncation, dtype), not from a smooth distortion. This package searches those settings against
the API's own scores: :mod:`.search` (candidates, agreement figures, coordinate search),
:mod:`.scoring` (candidate scorers sharing model loads), :mod:`.report` (files and table).
The stage is :mod:`pipeline.stages.align`; :func:`pipeline.align.run.run_align` runs it.
"""
