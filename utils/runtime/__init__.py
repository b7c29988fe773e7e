"""Process-level services every run needs: checkpoint files (`checkpoint.py`: strict loading of
ours and the authors' files, atomic saves), seeding (`seed.py`), the logger, metrics.jsonl and
TensorBoard writers (`logger.py`), DDP helpers (`distributed.py`) and the CPU allocator setting
(`cpu_memory.py`).

Imports nothing else of `utils`.
"""
