#!/usr/bin/env bash
# Makes .venv-dev: the development tools (requirements-dev.txt: pytest, ruff,
# uv, the model-family suite's exporters) in a virtualenv of their own that
# sees the conversion virtualenv's packages through a .pth file. Testing
# never installs into .venv, so it never changes the packages that
# conversions are fingerprinted with.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${BASE_VENV:-.venv}
dev=${DEV_VENV:-.venv-dev}
site=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp="$dev/onnx2pt-dev.stamp"
want=$(cat requirements-dev.txt "$base/pyvenv.cfg" <(echo "$site") | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
rm -rf "$dev"
"$base/bin/python" -m venv "$dev"
devsite=$("$dev/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# After the dev venv's own packages on sys.path: a tool may bring a newer
# version of something without touching .venv.
echo "$site" > "$devsite/onnx2pt-conversion-venv.pth"
"$dev/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
echo "$want" > "$stamp"
