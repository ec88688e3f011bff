#!/usr/bin/env bash
# Side-by-side timing of batches in worker processes (hyperfine; Debian:
# apt install hyperfine), and the memory of one worker over a long batch.
#
#   1. N models: onnx2pt --jobs 1, onnx2pt --jobs 2, and the plain Python
#      script run once per model (what a shell loop over a folder does);
#   2. one model: onnx2pt against the plain script;
#   3. M conversions in one worker, never recycled and recycled every 100
#      models: the worker's peak resident memory at the end (from --summary).
#
# Usage: bench/workers.sh [N] [M] [runs]   (from the repository root, after `go tool task venv`)
set -euo pipefail
n=${1:-32}
m=${2:-500}
runs=${3:-3}
command -v hyperfine >/dev/null || { echo "needs hyperfine (Debian/Ubuntu: apt install hyperfine)" >&2; exit 2; }
[ -x bin/onnx2pt ] && [ -x .venv/bin/python ] || { echo "run 'go tool task venv' first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results
mkdir -p "$out"

# The plain script writes the checkpoint and state_dict only; so do these
# batches (the portable artifacts are measured apart, for one model).
config() { # config FILE COUNT PREFIX [run settings]
  { [ -n "${4:-}" ] && echo "run: {$4}"
    echo "artifacts: [checkpoint, state_dict]"
    echo "models:"
    for i in $(seq 1 "$2"); do echo "  - {input: $PWD/models/resnet8.onnx, output: $work/$3-$i.pt}"; done
  } >"$1"
}
config "$work/batch.yaml" "$n" batch
pairs=()
for i in $(seq 1 "$n"); do pairs+=("models/resnet8.onnx:$work/plain-$i.pt"); done

echo "== $n models"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$out/workers-batch.md" \
  -n "onnx2pt --jobs 1" "./bin/onnx2pt convert -q --force --jobs 1 --config $work/batch.yaml" \
  -n "onnx2pt --jobs 2" "./bin/onnx2pt convert -q --force --jobs 2 --config $work/batch.yaml" \
  -n "plain Python, once per model" "sh -c 'for p in ${pairs[*]}; do .venv/bin/python bench/plain_convert.py \$p >/dev/null; done'"

echo "== one model"
hyperfine --warmup 1 --runs $((runs * 2)) --export-markdown "$out/workers-one.md" \
  -n onnx2pt "./bin/onnx2pt convert -q --force --artifacts checkpoint,state_dict --input models/resnet8.onnx --output $work/one.pt" \
  -n "onnx2pt, with TorchScript and .pt2" "./bin/onnx2pt convert -q --force --input models/resnet8.onnx --output $work/all.pt" \
  -n "plain Python" ".venv/bin/python bench/plain_convert.py models/resnet8.onnx:$work/plain.pt"

echo "== $m conversions in one worker"
config "$work/long.yaml" "$m" long "max_models_per_worker: 0"
config "$work/recycled.yaml" "$m" long "max_models_per_worker: 100"
for mode in long recycled; do
  /usr/bin/time -f "$mode: %e s, peak RSS of the largest process %M KiB" ./bin/onnx2pt convert -q --force --jobs 1 \
    --config "$work/$mode.yaml" --summary "$work/$mode.json" 2>&1 | tail -1
  .venv/bin/python - "$work/$mode.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rss = [m.get("peak_rss_bytes", 0) for m in s["models"]]
print(f"  worker peak RSS: after model 1 {rss[0] / 2**20:.0f} MiB, after model 100 {rss[min(99, len(rss) - 1)] / 2**20:.0f} MiB, at the end {rss[-1] / 2**20:.0f} MiB ({s['counts']})")
PY
done | tee "$out/workers-memory.txt"
