#!/usr/bin/env bash
# GPU throughput of the paper configs in one session, each measurement one JSON line with its
# provenance (commit, versions, GPU, command) in $RESULTS:
#  1. the LIDC paper config at batch 16: the plain reference formulation; the default path in
#     fp32 (TF32 convolutions, PyTorch's default), with TF32 matrix products, with cuDNN's
#     autotuner, in bf16 autocast; torch.compile (default mode, and reduce-overhead: CUDA
#     graphs), with and without bf16;
#  2. batch sizes 32 to 1024 for the default path, fp32 and bf16, until one does not fit;
#  3. the Cityscapes paper config at batch 12, fp32 and bf16;
#  4. bf16 and compile against fp32: the metrics after the same training steps (bench_amp.py);
#  5. per-kernel profiles of a training step at batch 16 and 256 (profile_train.py).
# One script, so that a short GPU session runs all of it.
#
#     RESULTS=gpu.jsonl bash benchmarks/gpu_check.sh        # or OUT=dir: $OUT/gpu_results.jsonl
set -u
OUT=${OUT:-.}
RESULTS=${RESULTS:-$OUT/gpu_results.jsonl}
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
bench() {
  timeout 180 python3 -m benchmarks.bench_train --device cuda "$@" > /tmp/gpu_bench.json \
    && python3 -c "import json; print(json.dumps(json.load(open('/tmp/gpu_bench.json'))))" \
    >> "$RESULTS" && python3 -c "import json; d = json.load(open('/tmp/gpu_bench.json')); \
print(f\"$*: train {d['train_img_per_s']:.0f}, eval {d['eval_img_per_s']:.0f} img/s, \
{d['peak_mem_mb']:.0f} MB\")"
}
LIDC="--config experiments/lidc_proposed.py"
CITY="--config experiments/cityscapes_proposed.py"

bench $LIDC --batch 16 --steps 5 --plain || echo "failed: plain"
bench $LIDC --batch 16 --steps 20 || echo "failed: fp32"
bench $LIDC --batch 16 --steps 20 --tf32 || echo "failed: tf32"
bench $LIDC --batch 16 --steps 20 --tf32 --cudnn-benchmark || echo "failed: cudnn-benchmark"
bench $LIDC --batch 16 --steps 20 --amp || echo "failed: bf16"
bench $LIDC --batch 16 --steps 20 --compile || echo "failed: compile"
bench $LIDC --batch 16 --steps 20 --compile --compile-mode reduce-overhead \
  || echo "failed: compile reduce-overhead"
bench $LIDC --batch 16 --steps 20 --compile --amp || echo "failed: compile bf16"

for flags in "" "--amp"; do
  for b in 32 64 128 256 512 1024; do
    bench $LIDC --batch $b --steps 10 --tf32 $flags || { echo "batch $b $flags: no fit"; break; }
  done
done

bench $CITY --batch 12 --steps 6 || echo "failed: cityscapes fp32"
bench $CITY --batch 12 --steps 6 --amp || echo "failed: cityscapes bf16"

timeout 200 python3 -m benchmarks.bench_amp --device cuda --steps 60 --compile \
  | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)))" >> "$RESULTS" \
  || echo "failed: bench_amp"

for b in 16 256; do
  timeout 120 python3 -m benchmarks.profile_train --device cuda --batch $b --rows 25 \
    --out "$OUT/profile_train_cuda_b$b.txt" > /dev/null || echo "failed: profile batch $b"
done
wc -l "$RESULTS"
