#!/usr/bin/env bash
# Creates models/peers/.venv (Python 3.10) with the two public DGA models from PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$(command -v python3.10 >/dev/null && pyenv which python3.10 2>/dev/null || echo python3.10)}"
[ -x "$here/.venv/bin/python" ] || "$py" -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
echo "peer env ready: $here/.venv/bin/python"
