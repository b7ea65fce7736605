"""``python -m pipeline check``: the drift check of a deployed calibrator (:mod:`pipeline.check`)."""
