#!/usr/bin/env bash
# Creates models/peers/.venv (Python 3.10) with the two public DGA models from PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# A Python 3.10: $PYTHON, else one installed under pyenv (its shim only works when 3.10 is the
# selected version), else python3.10 on PATH.
py="${PYTHON:-}"
if [ -z "$py" ] && command -v pyenv > /dev/null; then
  py=$(ls -d "$(pyenv root)"/versions/3.10*/bin/python3.10 2>/dev/null | tail -1 || true)
fi
py="${py:-python3.10}"
[ -x "$here/.venv/bin/python" ] || "$py" -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
echo "peer env ready: $here/.venv/bin/python"
