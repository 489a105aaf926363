#!/usr/bin/env bash
# The quickstart where the pixels decide (recipes/quickstart_pixels.yaml): a tiny random Qwen3-VL learns to
# say when the screen flashes in synthetic 12 s clips (a constant answer scores ~0.08 mIoU), by SFT then GRPO;
# then the final model on the test split, and the same model on blank copies of the test clips (it must fall
# to about the constant's score: it reads the video). Longer than scripts/quickstart.sh (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(bash scripts/setup.sh | tail -n 1)
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
RLVID="$VENV/bin/rlvid"
OUT=runs/quickstart_pixels
rm -rf "$OUT"
"$RLVID" make-tiny-model "$OUT/model" --arch qwen3_vl
"$RLVID" make-synthetic-data "$OUT/data" --n 300 --tasks flash_grounding --duration 12 --fps 2 --width 64 --height 48
"$RLVID" train recipes/quickstart_pixels.yaml
"$RLVID" eval recipes/quickstart_pixels.yaml --checkpoint "$OUT/final" --split test
"$VENV/bin/python" -c "from rlvid.data.video_controls import write_control_set as w; w('$OUT/data/test.jsonl', '$OUT/blank', 'blank')"
"$RLVID" eval recipes/quickstart_pixels.yaml data.test="$OUT/blank/test.jsonl" --checkpoint "$OUT/final" --split test \
    --out "$OUT/eval_test_blank"
"$RLVID" plot "$OUT"
