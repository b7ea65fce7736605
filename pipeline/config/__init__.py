"""The configuration schema, one module per area (``fit``, ``api``, ``local``, ``collect``,
``check``, ``align``, ``serve``, ``embed_check``, ``demo``), the range declarations and
cross-field checks beside each, and Hydra composition (``compose``). Domain packages import the
section types they take; :mod:`pipeline.config.schema` assembles them into ``PipelineConfig``."""
