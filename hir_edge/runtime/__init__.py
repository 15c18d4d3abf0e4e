"""The field runtime: bundle reader, inference backends, scoring and the Identifier (no torch)."""
