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
for d in 2 4 6; do  # short clips for SFT only: few time slots make the bright patch easy to find
  "$RLVID" make-synthetic-data "$OUT/short-${d}s" --n 250 --seed $((1000 + d)) --tasks flash_grounding --duration $d \
    --fps 2 --width 64 --height 48
done
"$VENV/bin/python" - "$OUT" <<'PY'
import dataclasses, sys
from rlvid.data.loaders import load_samples, write_jsonl
out = sys.argv[1]
sft = list(load_samples(f"{out}/data/train.jsonl", split="train").samples)
for d in (2, 4, 6):  # ids stay unique across the files
    sft += [dataclasses.replace(s, id=f"short{d}s-{s.id}") for s in load_samples(f"{out}/short-{d}s/train.jsonl").samples]
write_jsonl(sft, f"{out}/sft_data/train.jsonl")  # video paths are written absolute
PY
"$RLVID" train recipes/quickstart_pixels_sft.yaml   # SFT, stops once the 12 s val clips reach mIoU 0.3
"$RLVID" train recipes/quickstart_pixels.yaml       # GRPO from the SFT model
"$RLVID" eval recipes/quickstart_pixels.yaml --checkpoint "$OUT/final" --split test
"$VENV/bin/python" -c "from rlvid.data.video_controls import write_control_set as w; w('$OUT/data/test.jsonl', '$OUT/blank', 'blank')"
"$RLVID" eval recipes/quickstart_pixels.yaml data.test="$OUT/blank/test.jsonl" --checkpoint "$OUT/final" --split test \
    --out "$OUT/eval_test_blank"
"$RLVID" plot "$OUT"
