"""Benchmark scripts: each runs from the repository root as a module
(`python -m benchmarks.bench_train ...`) and writes its result, with its provenance, to
`benchmarks/results/` (README.md there indexes them)."""
