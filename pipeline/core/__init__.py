"""Shared infrastructure with no domain knowledge: the error base and exit codes, atomic file
writes and hashes, console output, optional-install checks, the loopback server helper and the
score cache. Standard library (and numpy for the cache) only; every other package may import it."""
