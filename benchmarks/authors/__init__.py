"""The authors' published MoSE code beside this project, run from this repository.

The harness never copies their code: it runs an unmodified checkout of their repository in
processes of its own (`worker.py`), with their tree first on the path and this project off it
(their top-level packages are also called `models`, `data` and `utils`), and passes tensors and
results through files. Get the tree with

    git clone https://github.com/gaozhitong/MoSE-AUSeg && git -C MoSE-AUSeg checkout 8261e7d
    pip install -r benchmarks/authors/requirements.txt    # OpenCV, for their transforms

and point the harness at it with `--authors-code PATH` or `MOSE_AUTHORS_CODE=PATH`:

    MOSE_AUTHORS_CODE=MoSE-AUSeg python -m benchmarks.authors.speed --rounds 3
    MOSE_AUTHORS_CODE=MoSE-AUSeg python -m benchmarks.authors.learning --seeds 0 1 2 3 4 --jobs 2

- `tree.py`: finds and identifies the tree (its commit: from git, or from the digest of its
  Python files for the published 8261e7d), starts worker processes.
- `worker.py`: runs in the authors' process: their model, OT loss, dataset, transforms and
  engine, on the CPU.
- `speed.py`: their training and evaluation steps against ours, alternating processes.
- `learning.py`: their code trained with the paper's recipe on the synthetic LIDC demo's data,
  beside ours on the same seeds; their test predictions scored by our evaluation (`replay.py`).
"""
