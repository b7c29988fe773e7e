#!/usr/bin/env bash
# GPU throughput in one session: the LIDC paper config at batch 16 and the Cityscapes paper
# config at batch 12 (bench_train.py: fp32, bf16 autocast, the plain reference formulation,
# torch.compile), then the metrics of bf16 / compile against fp32 on the same synthetic batch
# (bench_amp.py). One JSON line per measurement, each with its provenance, in $RESULTS.
set -u
RESULTS=${RESULTS:-${OUT:-.}/gpu_results.jsonl}
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
bench() { timeout 150 python3 benchmarks/bench_train.py --device cuda "$@" | python3 -c \
  "import json,sys; print(json.dumps(json.load(sys.stdin)))" >> "$RESULTS" || echo "failed: $*"; }
for spec in "experiments/lidc_proposed.py --batch 16" "experiments/cityscapes_proposed.py --batch 12"; do
  bench --config $spec --steps 10
  bench --config $spec --steps 10 --amp
  bench --config $spec --steps 5 --plain
done
timeout 200 python3 benchmarks/bench_amp.py --device cuda --steps 60 --compile \
  | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)))" >> "$RESULTS"
bench --config experiments/lidc_proposed.py --batch 16 --steps 10 --compile
bench --config experiments/lidc_proposed.py --batch 16 --steps 10 --compile --amp
bench --config experiments/cityscapes_proposed.py --batch 12 --steps 10 --compile
cat "$RESULTS"
