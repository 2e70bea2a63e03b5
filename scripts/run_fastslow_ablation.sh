#!/usr/bin/env bash
# Run the seed-004 ablations (examples/fastslow_ablation/*.yaml) one after another and print one table.
# Extra key=value arguments go to every run, e.g. a smaller model or a short budget:
#   bash scripts/run_fastslow_ablation.sh model_name_or_path=Qwen/Qwen2.5-VL-3B-Instruct max_steps=2000
# ONLY=ratio_ bash scripts/run_fastslow_ablation.sh   runs the files whose name starts with ratio_.
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${LLAMAFACTORY_CLI:-llamafactory-cli}
outputs=()
for config in examples/fastslow_ablation/${ONLY:-}*.yaml; do
  name=$(basename "$config" .yaml)
  out="saves/fastslow_ablation/$name"
  echo "=== $name ($config) -> $out"
  "$CLI" train "$config" "output_dir=$out" "$@"
  outputs+=("$out")
done
python - "${outputs[@]}" <<'PY'
import json, os, sys

keys = ["train_loss", "eval_loss", "eval_fastslow/lm_loss", "eval_fastslow/autoregressive_loss", "train_runtime"]
print(f"{'run':<22}" + "".join(f"{k:>36}" for k in keys) + f"{'video tokens/sample':>22}")
for out in sys.argv[1:]:
    results = json.load(open(os.path.join(out, "all_results.json")))
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    tokens = [r["fastslow/video_tokens"] for r in state["log_history"] if "fastslow/video_tokens" in r]
    row = "".join(f"{results.get(k, float('nan')):>36.4f}" for k in keys)
    print(f"{os.path.basename(out):<22}{row}{(sum(tokens) / len(tokens)) if tokens else float('nan'):>22.1f}")
PY
