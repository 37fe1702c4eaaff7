"""Matched real vs regurgitated training splits: config, sampling, conditions, writing, fingerprints."""
