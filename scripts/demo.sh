#!/usr/bin/env bash
# The main job on the embedded default: tiny offline Qwen2.5-VL + synthetic videos, `stage: action_cls`
# through the stock `llamafactory-cli train`, then prints the held-out accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python scripts/run_demo.py "$@"
