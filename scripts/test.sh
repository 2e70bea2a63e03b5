#!/usr/bin/env bash
# The test suite (unit + e2e through the stock llamafactory-cli), after the same set-up as the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# two workers, each taking whole files (module fixtures are built once); LFV_TEST_WORKERS=0 runs in one process
exec .venv/bin/python -m pytest tests -n "${LFV_TEST_WORKERS:-2}" --dist loadfile "$@"
