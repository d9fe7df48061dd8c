#!/usr/bin/env bash
# The test suite against both ends of the supported transformers range, each in a throwaway venv.
#
#   benchmarks/transformers_range.sh [LOW [HIGH]]
#
# LOW defaults to the lowest version pyproject.toml's `probe` extra accepts, HIGH to the newest release on
# the package index. Each venv is made with --system-site-packages, so it uses this machine's torch
# (never a fresh torch: `torch==2.13.0` is also passed as a constraint) and test tools; only transformers and
# what it requires at that version (huggingface-hub, tokenizers) are installed into the venv.
# The suite runs in a clone of HEAD (commit first), so the results belong to one commit and edits made
# meanwhile do not leak in. Writes benchmarks/results/transformers_range.md (summary) and
# transformers_range-<version>.log (pytest output).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
LOW=${1:-$($PY - <<'PYEOF'
import re, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["probe"]
spec = next(r for r in extra if r.startswith("transformers"))
print(re.search(r">=\s*([0-9.]+)", spec).group(1))
PYEOF
)}
HIGH=${2:-$($PY -m pip index versions transformers 2>/dev/null | sed -n 's/^transformers (\(.*\))$/\1/p')}
[ -n "$LOW" ] && [ -n "$HIGH" ] || { echo "transformers_range.sh: could not determine the versions (LOW=$LOW HIGH=$HIGH)" >&2; exit 3; }
RESULTS=benchmarks/results
TORCH=$($PY -c "import torch; print(torch.__version__.split('+')[0])")
SUMMARY=$RESULTS/transformers_range.md
TMP=$(mktemp -d /tmp/oomplan-tf-range.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
git clone --quiet "$ROOT" "$TMP/src" || { echo "transformers_range.sh: git clone failed" >&2; exit 3; }
{
  echo "# The test suite on both ends of the supported transformers range"
  echo
  echo "Made by \`benchmarks/transformers_range.sh $LOW $HIGH\` on $(date -u +%Y-%m-%d), on a clone of commit $(git rev-parse --short HEAD)."
  echo "Python $($PY -c 'import platform; print(platform.python_version())'), torch $TORCH (CPU, this machine's), command \`python -m pytest -q\` (the README's)."
  echo
  echo "| transformers | huggingface-hub | tokenizers | result | wall s |"
  echo "|---|---|---|---|---|"
} > "$SUMMARY.tmp"
status=0
for v in $(printf '%s\n' "$LOW" "$HIGH" | awk '!seen[$0]++'); do
  venv=$TMP/tf-$v
  log=$RESULTS/transformers_range-$v.log
  $PY -m venv --system-site-packages "$venv"
  if ! "$venv/bin/python" -m pip install --quiet -c <(echo "torch==$TORCH") "transformers==$v" > "$log" 2>&1; then
    echo "| $v | | | install failed (see $(basename "$log")) | |" >> "$SUMMARY.tmp"; status=1; continue
  fi
  vers=$("$venv/bin/python" -c "from importlib.metadata import version as v; print(v('transformers'), v('huggingface-hub'), v('tokenizers'), v('torch').split('+')[0])")
  read -r tf hub tok torch_here <<< "$vers"
  [ "$tf" = "$v" ] && [ "$torch_here" = "$TORCH" ] || { echo "transformers_range.sh: venv has transformers $tf torch $torch_here" >&2; exit 3; }
  start=$(date +%s)
  (cd "$TMP/src" && PYTHONPATH=$TMP/src "$venv/bin/python" -m pytest -q -p no:cacheprovider) >> "$log" 2>&1
  rc=$?
  line=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
  echo "| $tf | $hub | $tok | ${line:-exit $rc} | $(( $(date +%s) - start )) |" >> "$SUMMARY.tmp"
  if [ $rc -ne 0 ]; then
    status=1
    { echo; echo "Failed on transformers $tf:"; grep -E '^FAILED|^ERROR' "$log" | sed 's/^/- /'; } >> "$SUMMARY.tmp.fail"
  fi
done
[ -f "$SUMMARY.tmp.fail" ] && cat "$SUMMARY.tmp.fail" >> "$SUMMARY.tmp" && rm -f "$SUMMARY.tmp.fail"
mv "$SUMMARY.tmp" "$SUMMARY"
cat "$SUMMARY"
exit $status
