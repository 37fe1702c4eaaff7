"""Leaderboards of protocol runs: checked submissions, static pages.

- :mod:`.schema`: the entry (``regurg-bench/leaderboard-entry/v2``; ``/v3`` with a collapse curve; v1 read
  only), the part of ``results.json`` read, names, size limits, :class:`~.schema.SubmissionError`;
- :mod:`.curve`: an entry's collapse curve from a run's ``collapse`` section, and its inline SVG on the page;
- :mod:`.safe_io`: bounded, strict JSON reading and paths that stay inside the run folder;
- :mod:`.provenance`: known task versions, published test sets, metric signatures;
- :mod:`.evidence`: the files an entry is computed from, gzipped and content-addressed beside the board;
- :mod:`.rules`: the rules of a comparable entry (full test set, required conditions, plausibility);
- :mod:`.verify`: every claimed number recomputed from the logged lm-eval samples;
- :mod:`.submit`: ``submit`` (run folder -> entry file) and ``validate_leaderboard``;
- :mod:`.render`: README.md, index.html (sortable, self-contained) and scores.png;
- :mod:`.migrate`: ``leaderboard migrate`` (entries to the newest schema where that changes anything);
- :mod:`.commands`: ``regurg-bench submit`` and ``regurg-bench leaderboard build|validate|migrate|ci``.

Nothing is imported here: the CLI imports :mod:`.commands` at start-up and keeps it light.
"""
