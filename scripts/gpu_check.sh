#!/usr/bin/env bash
# One-command GPU check (see scripts/gpu_check.py and docs/benchmarks.md, "GPU check"): bf16 training steps of
# every stage through the stock llamafactory-cli on real-width random models, flash-attn / Liger / DeepSpeed ZeRO-3
# variants when importable, then bench/run.py --only gpu; a summary table under --out (default ./gpu_check_out).
#   bash scripts/gpu_check.sh [--out DIR] [--bench full|quick|off] ...   # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run                                  # the same paths on CPU, tiny, 1 step
# Python: $PYTHON, else the repo's .venv, else python3. Exit 1 when a check failed, 2 when llamafactory or
# llamafactory_video cannot be imported.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$HERE/../.venv/bin/python" ]; then PY="$HERE/../.venv/bin/python"; else PY="$(command -v python3 || command -v python)"; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" "$HERE/gpu_check.py" "$@"
