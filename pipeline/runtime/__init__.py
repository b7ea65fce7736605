"""What runs next to a model in production: the pickle-free calibrator spec, the text
preprocessing shared by every scorer and the API client, and the artifact loader. numpy and the
standard library only (``pip install score-calibration-pipeline``); :mod:`pipeline.inference` is
its public face."""
