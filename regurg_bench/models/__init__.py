"""Models regurg-bench makes itself (from-scratch students); HF checkpoints are used as they are."""
