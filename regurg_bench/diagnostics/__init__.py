"""Diagnostics: the papers' mechanisms measured on a split, real vs each generator.

- error-rate proxies (:mod:`.errors`): chrF/TER against the human target; length ratio, copies,
  wrong output language, cross-lingual similarity (pluggable encoder);
- lexical diversity fair across lengths (:mod:`.diversity`): MTLD, MATTR, distinct-n, vocabulary growth;
- format uniformity (:mod:`.uniformity`): repeated openings, templates, length spread, repetition.

Each diagnostic is a small class in :data:`DIAGNOSTICS`; :func:`diagnose` runs them on every condition
and returns a :class:`DiagnosticsReport` (JSON, rich table, PNG).
"""

from regurg_bench.diagnostics.base import (
    DIAGNOSTICS,
    Diagnostic,
    DiagnosticUnavailable,
    StatInfo,
    register_diagnostic,
    words,
)

# Import for their registration side effect (and re-export).
from regurg_bench.diagnostics.errors import (  # isort: skip
    CrossLingualSimilarity,
    LengthRatio,
    OutputLanguage,
    ReferenceAgreement,
    SentenceEncoder,
    SimilarityScorer,
    SourceCopy,
)
from regurg_bench.diagnostics.diversity import LexicalDiversity, distinct_n, mattr, mtld, vocabulary_growth  # isort: skip
from regurg_bench.diagnostics.uniformity import LengthSpread, Openings, Repetition, Templates  # isort: skip
from regurg_bench.diagnostics.report import DiagnosticsReport  # isort: skip
from regurg_bench.diagnostics.runner import DEFAULT_DIAGNOSTICS, build_diagnostics, diagnose  # isort: skip

__all__ = [
    "DEFAULT_DIAGNOSTICS",
    "DIAGNOSTICS",
    "CrossLingualSimilarity",
    "Diagnostic",
    "DiagnosticUnavailable",
    "DiagnosticsReport",
    "LengthRatio",
    "LengthSpread",
    "LexicalDiversity",
    "Openings",
    "OutputLanguage",
    "ReferenceAgreement",
    "Repetition",
    "SentenceEncoder",
    "SimilarityScorer",
    "SourceCopy",
    "StatInfo",
    "Templates",
    "build_diagnostics",
    "diagnose",
    "distinct_n",
    "mattr",
    "mtld",
    "register_diagnostic",
    "vocabulary_growth",
    "words",
]
