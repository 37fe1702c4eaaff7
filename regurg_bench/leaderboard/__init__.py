"""Leaderboards of protocol runs: checked submissions, static pages.

- :mod:`.schema`: the entry (``regurg-bench/leaderboard-entry/v2``), the part of ``results.json`` read,
  names, size limits, :class:`~.schema.SubmissionError`;
- :mod:`.safe_io`: bounded, strict JSON reading and paths that stay inside the run folder;
- :mod:`.provenance`: known task versions, published test sets, metric signatures;
- :mod:`.evidence`: the files an entry is computed from, gzipped and content-addressed beside the board;
- :mod:`.rules`: the rules of a comparable entry (full test set, required conditions, plausibility);
- :mod:`.verify`: every claimed number recomputed from the logged lm-eval samples;
- :mod:`.submit`: ``submit`` (run folder -> entry file) and ``validate_leaderboard``;
- :mod:`.render`: README.md, index.html (sortable, self-contained) and scores.png;
- :mod:`.commands`: ``regurg-bench submit`` and ``regurg-bench leaderboard build|validate``.

Nothing is imported here: the CLI imports :mod:`.commands` at start-up and keeps it light.
"""
