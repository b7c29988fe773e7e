"""Scripts behind particular findings, each run from the repository root as a module
(`python -m research.gate_limit ...`); README.md lists them."""
