"""Benchmarks for runjournal: run them as ``python -m bench.<name>`` (e.g. ``bench.append``)."""
