"""Plinth's benchmark suite: ``python -m benchmarks`` writes ``benchmarks/RESULTS.md``.

Four variants of the same service, side by side in one run: raw asyncpg (R),
the seed stories' SQLAlchemy code (N), advanced-alchemy (A) and Plinth (P).
See ``benchmarks/README.md``.
"""
