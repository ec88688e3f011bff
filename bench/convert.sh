#!/usr/bin/env bash
# Side-by-side timing of conversions (hyperfine; Debian: apt install hyperfine):
# onnx2pt against bench/plain_convert.py, the same steps as a plain Python
# script, for one model, for N models in one run, and for a re-run of the N
# models where nothing changed.
#
# Usage: bench/convert.sh [N] [runs]   (from the repository root, after `go tool task venv`)
set -euo pipefail
n=${1:-8}
runs=${2:-5}
command -v hyperfine >/dev/null || { echo "needs hyperfine (Debian/Ubuntu: apt install hyperfine)" >&2; exit 2; }
[ -x bin/onnx2pt ] && [ -x .venv/bin/python ] || { echo "run 'go tool task venv' first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results
mkdir -p "$out"

pairs=()
{
  echo "models:"
  for i in $(seq 1 "$n"); do
    echo "  - {input: $PWD/models/resnet8.onnx, output: $work/many-$i.pt}"
    pairs+=("models/resnet8.onnx:$work/plain-$i.pt")
  done
} >"$work/many.yaml"

echo "== one model"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$out/convert-one.md" \
  -n onnx2pt "./bin/onnx2pt convert -q --force --input models/resnet8.onnx --output $work/one.pt" \
  -n "plain Python" ".venv/bin/python bench/plain_convert.py models/resnet8.onnx:$work/plain.pt"

echo "== $n models in one run"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$out/convert-many.md" \
  -n onnx2pt "./bin/onnx2pt convert -q --force --config $work/many.yaml" \
  -n "plain Python" ".venv/bin/python bench/plain_convert.py ${pairs[*]}" \
  -n "plain Python, one process per model" "sh -c 'for p in ${pairs[*]}; do .venv/bin/python bench/plain_convert.py \$p >/dev/null; done'"

echo "== re-run of the $n models, nothing changed"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$out/convert-rerun.md" \
  -n onnx2pt "./bin/onnx2pt convert -q --config $work/many.yaml" \
  -n "plain Python" ".venv/bin/python bench/plain_convert.py ${pairs[*]}"
