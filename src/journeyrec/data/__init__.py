"""Data layer: canonical event schema, readers, the demo shop, and preparation into sequences."""
