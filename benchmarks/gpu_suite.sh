#!/usr/bin/env bash
# The GPU benchmarks in one go (records end in _gpu): throughput, scaling,
# end to end and compile cache at the sizes docs/benchmarks.md
# reports. Each step has its own time limit, and a failing step does not stop
# the others.
#
#     bash benchmarks/gpu_suite.sh OUTDIR     # records and logs under OUTDIR
set -uo pipefail
out=${1:?usage: gpu_suite.sh OUTDIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s"
  tail -n 25 "$out/$name.log"
}

"$py" -c "import jax; print(jax.__version__, jax.devices())"
step throughput 170 "$py" "$here/throughput.py" --seeds 1,256,4096 \
  --steps 100000,5000,5000 --out-dir "$out"
step scaling 200 "$py" "$here/scaling.py" --seeds 1,1024,16384 \
  --solve-max-seeds 1024 --devices "" --memory-seeds 4096 --memory-updates 1000 \
  --timeout 60 --out "$out"
step end_to_end 60 "$py" "$here/end_to_end.py" --seeds 256 --steps 5000 --out-dir "$out"
step compile_cache 90 "$py" "$here/compile_cache.py" --out "$out/compile_cache_gpu.json"
