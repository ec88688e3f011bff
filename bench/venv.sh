#!/usr/bin/env bash
# Side-by-side timing of virtualenv provisioning (hyperfine; Debian: apt install hyperfine).
#
#   1. nothing changed: `onnx2pt venv` on a ready venv, against the up-to-date
#      checks of uv and pip on the same venv;
#   2. a fresh venv with a warm package cache: onnx2pt against
#      `python -m venv` + `pip install -r requirements.txt` and against
#      `uv venv` + `uv pip install -r requirements.txt`.
#
# Usage: bench/venv.sh [runs]   (run from the repository root after `go tool task venv`)
set -euo pipefail
runs=${1:-3}
command -v hyperfine >/dev/null || { echo "needs hyperfine (Debian/Ubuntu: apt install hyperfine)" >&2; exit 2; }
[ -x bin/onnx2pt ] && [ -f .venv/.onnx2pt-ready.json ] || { echo "run 'go tool task venv' first" >&2; exit 2; }

python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
uv=$(command -v uv || echo "${XDG_CACHE_HOME:-$HOME/.cache}/onnx2pt/uv/bin/uv")
[ -x "$uv" ] || { echo "no uv found (onnx2pt installs one on its first provisioning)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=bench/results
mkdir -p "$out"

echo "== nothing changed (ready .venv)"
hyperfine --warmup 2 --runs $((runs * 5)) --export-markdown "$out/venv-noop.md" \
  -n onnx2pt "./bin/onnx2pt venv -q" \
  -n "uv pip install" "$uv pip install -q --python .venv/bin/python -r requirements.txt" \
  -n "pip install" ".venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt"

echo "== fresh venv, warm cache"
hyperfine --warmup 1 --runs "$runs" --export-markdown "$out/venv-fresh.md" \
  --prepare "rm -rf $work/ours $work/uv $work/pip" \
  -n onnx2pt "./bin/onnx2pt venv -q --venv $work/ours" \
  -n "uv venv + uv pip install" "sh -c '$uv venv -q --python $python $work/uv && $uv pip install -q --python $work/uv/bin/python -r requirements.txt'" \
  -n "python -m venv + pip install" "sh -c '$python -m venv $work/pip && $work/pip/bin/pip install -q --disable-pip-version-check -r requirements.txt'"
