#!/usr/bin/env bash
# The GPU check: run on an offline machine with an NVIDIA GPU where CuPy (CUDA 13), PyTorch,
# numpy, pytest, hypothesis, matplotlib and tqdm are installed, from a source checkout:
#     PYTHONPATH=. bash benchmarks/gpu_check.sh OUTDIR
# Each stage runs under its own timeout and writes its log and a line of results into OUTDIR as it
# goes (OUTDIR/summary.json is rewritten after every stage), so a cut-short run still reports.
# Finishes in about 5 minutes on an H200.
set -u
out=${1:-gpu-check-out}
mkdir -p "$out"
export PYTHONPATH=${PYTHONPATH:-.}
export MINIRES_PROGRESS=0
summary="$out/summary.json"
echo '{}' > "$summary"

record() {  # record STAGE STATUS SECONDS [EXTRA_JSON]
  python3 - "$summary" "$1" "$2" "$3" "${4:-null}" <<'PY'
import json, sys
path, stage, status, seconds, extra = sys.argv[1:6]
data = json.load(open(path))
data[stage] = {"status": status, "seconds": float(seconds), "extra": json.loads(extra)}
json.dump(data, open(path, "w"), indent=1)
PY
}

stage() {  # stage NAME TIMEOUT COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  local status=ok; [ $rc -ne 0 ] && status="failed rc=$rc"; [ $rc -eq 124 ] && status="timed out"
  echo "   $status in $((SECONDS - t0)) s"; tail -n 3 "$out/$name.log"
  record "$name" "$status" "$((SECONDS - t0))"
}

python3 -c "import cupy, minires as mr; print('cupy', cupy.__version__, 'gpus', cupy.cuda.runtime.getDeviceCount(), 'minires cuda available:', mr.cuda.is_available())" > "$out/env.log" 2>&1
cat "$out/env.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/env.log" 2>&1

stage tests_cuda 150 env MINIRES_TEST_DEVICES=cuda python3 -m pytest -q -x --no-header -p no:cacheprovider tests \
  --ignore=tests/test_ops_grad.py
stage gradcheck_cuda 90 env MINIRES_TEST_DEVICES=cuda python3 -m pytest -q --no-header -p no:cacheprovider tests/test_ops_grad.py
stage train_cuda 60 python3 - <<'PY'
import json, minires as mr
from minires import models
from minires.experiments import load_data
from minires.train import fit
mr.manual_seed(0)
train, test = load_data("embedded", 32, 20000, 2000, 0)
model = models.resnet20().to("cuda")
h = fit(model, train, test, steps=300, eval_every=50, warmup_steps=50, progress=False)
print(json.dumps(h.to_dict()))
assert h.train_loss[-1] < h.train_loss[0] * 0.8, "the training loss did not fall"
print("loss fell from %.3f to %.3f; test error %.1f%%; %.1f s" % (h.train_loss[0], h.train_loss[-1], h.test_error[-1], h.seconds))
PY
stage bench_step_cuda 120 python3 benchmarks/bench_step.py --device cuda --batch-sizes 128 512 \
  --json "$out/bench_step_cuda.json"
stage bench_kernels_cuda 40 python3 benchmarks/bench_kernels.py --device cuda --json "$out/bench_kernels_cuda.json"
echo "== summary"; cat "$summary"
