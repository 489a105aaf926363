#!/usr/bin/env bash
# Install (scripts/setup.sh), then the quickstart on CPU: build a tiny random Qwen2.5-VL, make
# synthetic video tasks, and evaluate the model on the validation split with recipes/quickstart.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(bash scripts/setup.sh | tail -n 1)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
RLVID="$VENV/bin/rlvid"
"$RLVID" make-tiny-model runs/quickstart/model --arch qwen2_5_vl
"$RLVID" make-synthetic-data runs/quickstart/data --n 200 --seed 0
"$RLVID" eval recipes/quickstart.yaml --split val
