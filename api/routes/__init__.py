"""HTTP routes: thin shells over commands/ (writes) and projections/queries (reads)."""
