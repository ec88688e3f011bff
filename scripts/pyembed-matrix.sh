#!/usr/bin/env bash
# Build pyembed against every CPython 3.9–3.13 found on this machine and run
# its tests (they need only the standard library), one interpreter at a time.
#
# Interpreters: $PYEMBED_PYTHONS (space-separated) if set; otherwise pyenv's
# versions, python3.9 … python3.13 on PATH, and /usr/bin/python3.
# Prints one line per interpreter and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

candidates=()
if [ -n "${PYEMBED_PYTHONS:-}" ]; then
  read -r -a candidates <<<"$PYEMBED_PYTHONS"
else
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for minor in 9 10 11 12 13; do
    for py in "$root"/versions/3."$minor".*/bin/python3."$minor"; do
      [ -x "$py" ] && candidates+=("$py")
    done
    py=$(command -v "python3.$minor" 2>/dev/null) && candidates+=("$py")
  done
  [ -x /usr/bin/python3 ] && candidates+=(/usr/bin/python3)
fi

declare -A seen
results=()
failed=0
for py in "${candidates[@]}"; do
  # The interpreter's own account of itself sees through shims and links.
  read -r version real < <("$py" -c 'import os, platform, sys; print(platform.python_version(), os.path.realpath(sys.executable))' 2>/dev/null) || continue
  [ -n "${seen[$real]:-}" ] && continue
  seen[$real]=1
  log=$(mktemp)
  start=$(date +%s)
  if go run ./cmd/pybuild --python "$real" --out ".build/python-matrix/$version-$(echo "$real" | md5sum | cut -c1-6)" \
      -- go test -count=1 ./pyembed/ >"$log" 2>&1; then
    status=PASS
  else
    status=FAIL
    failed=$((failed + 1))
    sed 's/^/    /' "$log" | tail -20
  fi
  results+=("$(printf '%-4s Python %-8s %-45s %3ss' "$status" "$version" "$real" $(( $(date +%s) - start )))")
  echo "${results[-1]}"
  rm -f "$log"
done

echo
echo "matrix: $(( ${#results[@]} - failed )) passed, $failed failed"
[ "${#results[@]}" -gt 0 ] || { echo "no interpreters found" >&2; exit 1; }
exit $(( failed > 0 ))
