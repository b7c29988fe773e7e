#!/usr/bin/env bash
# One prepared GPU run (issue: speed): LIDC paper config at batch 16 and Cityscapes paper config
# at batch 12 — plain reference formulation, fp32, bf16 AMP, torch.compile — then the metrics
# of AMP / compile vs fp32 on the same synthetic batch. Results: JSON lines in $RESULTS.
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
