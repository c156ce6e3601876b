#!/usr/bin/env bash
# One short session on a lent GPU machine (15 minutes of device time in all): check the CUDA-graph
# loop against the plain one, measure episodes/s of both, and time a training run to the paper's
# accuracy. Installs nothing from the network (the machine has none); results go to $OUT.
#
# Before the call, on the development machine (the dataset must travel; it stays out of git):
#   mkdir -p .devdata/omniglot && cp ../shared/data/omniglot/images_*.zip .devdata/omniglot/
#   grep -qx '/.devdata/' .git/info/exclude || echo /.devdata/ >> .git/info/exclude
# then: run(command="bash benchmarks/gpu_session.sh", carry=[".devdata"], timeout_s=540)
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export EDGEMETA_DATA=${EDGEMETA_DATA:-$PWD/.devdata/omniglot}
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

python3 -m pip install --quiet --no-deps --no-build-isolation -e . >"$OUT/install.txt" 2>&1 || log "install failed"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/summary.txt"

log "CUDA-graph loop equals the plain loop"
timeout 120 python3 -m pytest -q -m gpu tests/training/test_compiled_step.py 2>&1 | tail -n 5 | tee -a "$OUT/summary.txt"

for batch in 1024 4096; do
  log "throughput, batch $batch (reference, plain, compiled = CUDA graphs)"
  timeout 150 python3 benchmarks/train_throughput.py --device cuda --threads 0 --batch "$batch" --iters 10 --warmup 3 \
    2>&1 | tail -n 7 | tee -a "$OUT/summary.txt"
done

log "episode sampling: host vs device (--sampler device)"
timeout 60 python3 benchmarks/train_throughput.py --device cuda --threads 0 --batch 1024 --iters 5 --warmup 1 \
  --no-compile --sampling --workers 4 2>&1 | grep -i sampl | tee -a "$OUT/summary.txt"

log "time to the paper's accuracy (validation 5th instance >= 94.9%), episodes drawn on the GPU"
timeout 240 python3 -m edgemeta train --device cuda --compile --sampler device --model mann --out "$OUT/run" \
  --batch-size 64 --lr 3e-3 --episodes 64000 --val-every 25 --val-episodes 500 --ckpt-every 100 \
  >"$OUT/train.txt" 2>&1
python3 - "$OUT/run/metrics.jsonl" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hit = next((r for r in rows if r["val"][4] >= 94.9), None)
last = rows[-1]
print(f"validations: {len(rows)}, last step {last['step']}, 5th-instance val {last['val'][4]}%, {last['episodes_per_s']:.0f} episodes/s")
print("reached 94.9% at the 5th instance:", f"step {hit['step']}, {hit['elapsed_s']:.0f} s" if hit else "not within the time box")
EOF
