"""The estimators: monotone calibrators, fusion of several sources, their scales, the pairwise
rank objective, and the agreement metrics. scikit-learn and numpy; no config, no files, no I/O."""
