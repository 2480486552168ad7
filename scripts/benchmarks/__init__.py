"""The benchmark's parts, one per area; each module's `PARTS` maps a part's name to a function of the run's
`Context` that prints its rows (`scripts/benchmark.py` runs them)."""
