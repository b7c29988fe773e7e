#!/usr/bin/env bash
# The synthetic LIDC demo end to end on CUDA (expert coupling, image gate with its refit and
# flip averaging, both head layouts), timed, then the test suite on a machine where CUDA is
# visible. Logs, results and the provenance (provenance.json, also the first line printed and
# the first line of demo_cuda.log) go to $OUT (or ./gpu_out). POT travels as a wheel in .whl/
# where the machine has none (installed compiled: without .pyc files, Python 3.12 warns on its
# sources at import, which two tests read as stderr).
set -u
export PYTHONUNBUFFERED=1
DEST=${OUT:-./gpu_out}
mkdir -p "$DEST"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site \
    .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 -m benchmarks.provenance --command "bash benchmarks/gpu_demo_check.sh" \
  | tee "$DEST/provenance.json"
nvidia-smi -L
python3 -c "import torch, ot; print('torch', torch.__version__, torch.cuda.get_device_name(), 'pot', ot.__version__)"
SECONDS=0
python3 -c "import json, sys; print('# provenance: ' + json.dumps(json.load(sys.stdin)))" \
  < "$DEST/provenance.json" > "$DEST/demo_cuda.log"   # the log carries its own provenance
timeout 300 python3 main.py experiments/synthetic_lidc.py --device cuda \
  --set log_root=/tmp/gpu_log >> "$DEST/demo_cuda.log" 2>&1
echo "demo rc $? wall ${SECONDS} s"
grep -E "test: |gate refit|training done|epoch (1|16) " "$DEST/demo_cuda.log" | cut -c1-400
cp /tmp/gpu_log/synthetic/synthetic_lidc/test/results_*.json "$DEST/" 2> /dev/null
SECONDS=0
timeout 200 python3 -m pytest -q -p no:cacheprovider > "$DEST/pytest_cuda.log" 2>&1
echo "pytest rc $? wall ${SECONDS} s"
tail -n 15 "$DEST/pytest_cuda.log"
