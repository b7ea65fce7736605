"""The pipeline's two file formats and their readers: the query/documents dataset that collect
scores (JSONL) and the paired-score table it writes and fit reads (CSV/Parquet + sidecar)."""
