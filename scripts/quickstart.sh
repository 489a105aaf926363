#!/usr/bin/env bash
# Install (scripts/setup.sh), then the quickstart on CPU: build a tiny random Qwen2.5-VL, make
# synthetic temporal-grounding videos, train it with recipes/quickstart.yaml (SFT warm start on short
# clips, then GRPO on long ones, evaluating on the validation split as it goes), evaluate the final
# model on the test split and draw the curves.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(bash scripts/setup.sh | tail -n 1)
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
RLVID="$VENV/bin/rlvid"
rm -rf runs/quickstart
"$RLVID" make-tiny-model runs/quickstart/model --arch qwen2_5_vl
"$RLVID" make-synthetic-data runs/quickstart/data --n 300 --tasks temporal_grounding --duration 12 --fps 2
"$RLVID" make-synthetic-data runs/quickstart/data/short --n 200 --seed 1 --tasks temporal_grounding --duration 4 --fps 2
# SFT warm start on 4 s clips (answer format), then GRPO on 12 s clips from that model
"$RLVID" sft recipes/quickstart.yaml data.train=runs/quickstart/data/short/train.jsonl trainer.output_dir=runs/quickstart/sft
"$RLVID" train recipes/quickstart.yaml
"$RLVID" eval recipes/quickstart.yaml --checkpoint runs/quickstart/final --split test
"$RLVID" plot runs/quickstart
