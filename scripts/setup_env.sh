#!/usr/bin/env bash
# Create (or refresh) ./.venv with the pinned stack and this package installed in editable mode.
# Idempotent: reinstalls only when setup.py / requirements.txt / constraints.txt changed.
# Usage: source-free; `bash scripts/setup_env.sh` then use .venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp_file="$VENV/.llamafactory_video_stamp"
stamp=$(cat setup.py requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ] || [ ! -f "$VENV/lib/"python3*/site-packages/llamafactory_video.pth ]; then
  echo "[setup] installing the pinned stack into $VENV (a few minutes on a fresh machine)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test]"
  echo "$stamp" > "$stamp_file"
fi
# byte-compile the plugin (pip does this for regular installs): the startup hook then costs ~1 ms per process
# even where PYTHONDONTWRITEBYTECODE=1 keeps Python from caching bytecode itself
"$VENV/bin/python" -m compileall -q src/llamafactory_video >/dev/null
"$VENV/bin/python" -c "import llamafactory, transformers, torch; print(f'[setup] llamafactory {llamafactory.__version__}, transformers {transformers.__version__}, torch {torch.__version__}')"
