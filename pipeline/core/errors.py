"""The one base of every error a user can act on, and the project's exit-code convention.

Every stage exits with

====  =====================================================================================
0     done (and, for a stage with a verdict, a positive one)
1     the stage's own negative verdict: ``check`` found drift, ``align`` found NOT ALIGNED,
      ``embed-check``'s gate failed. Reports are written; nothing went wrong.
2     the stage could not do its job: a bad setting, a missing or malformed input file, a model
      or API that cannot be used. One line on stderr names the file, key or setting; no report
      of a run that did not happen is written.
====  =====================================================================================

Errors that belong in the third row derive from :class:`PipelineError`; ``python -m pipeline``
catches it once (``pipeline/__main__.py``), prints ``error: <message>`` and exits with
:attr:`PipelineError.exit_code`. A stage never returns 1 for anything but its verdict.

Standard library only: :mod:`pipeline.inference` (numpy-only) derives its errors from this too.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_ERROR = 2


class PipelineError(Exception):
    """A failure the user can fix (input, setting, environment): one line, exit status 2."""

    exit_code: int = EXIT_ERROR
