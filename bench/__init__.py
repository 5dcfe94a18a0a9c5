"""xsearch benchmarks: encoding pipeline, vector index (ours vs hnswlib / usearch), scaling, incremental re-index.

Run from the repository root: ``python -m bench.run [--quick|--full] [--only ...] --out results.json``.
Every benchmark is a function returning a JSON-able dict; bench.run prints a markdown table for each.
Timings are only compared as ratios taken in the same run (shared, noisy machines).
"""
