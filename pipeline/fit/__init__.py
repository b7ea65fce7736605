"""``fit``/``evaluate``/``export``: build the model from the fit settings, evaluate it on
held-out queries, write the report, the plots and the artifact (:func:`pipeline.fit.run.run_fit`)."""
