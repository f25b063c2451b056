#!/usr/bin/env bash
# Creates models/train/.venv and installs the pinned training requirements.
# Usage (from the repo root): bash models/train/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3.11}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$py" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
echo "training env ready: $here/.venv/bin/python"
