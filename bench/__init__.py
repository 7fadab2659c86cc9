"""Benchmarks (throughput, latency, rebuild rate) that print figures. Not timed tests.

Run each as a module, e.g. `.venv/bin/python -m bench.append --help`. See docs/benchmarks.md.
"""
