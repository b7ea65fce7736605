"""Local scorers (transformers backends), one file per backend."""
