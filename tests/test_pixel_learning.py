"""Learning that needs the pixels (issue 17): SFT then GRPO read the flash time from the video; controls say so.

The task (tests/pixel_learning.py): 12 s clips whose screen turns one colour for one second at a random time; the
best constant answer scores 0.100 held-out mIoU here (fitted on train). The checks are issue 17's: GRPO ends at
held-out mIoU >= 0.5 and at least +0.10 over its SFT start; the final model on blank or frame-shuffled copies of the
held-out clips scores at most the constant + 0.05; the sign-flipped GRPO run does not improve on its SFT start.

The setting (READING_SETTING): on 12 s clips alone the tiny model's SFT loss sits at the answer prior for a
seed-dependent 250-800+ steps (most seeds never read in 760); adding 2, 4 and 6 s flash clips to SFT's training set
made it read within 240-300 steps in 7 of 8 runs (not tiny data/model seed 1/1: see docs/benchmarks.md). SFT
stops at the first check (every 20 steps, on 40 clips carved from train) with mIoU >= 0.3, so GRPO starts from a
model that reads some time slots and spreads the reading (100 steps).
Measured with this configuration (scripts/bench_learning.py, the same code path), data and model seed 0,
2026-11-28: constant 0.100, SFT stops at step 280 (check 0.375) with held-out 0.347; GRPO 0.537 after 100 steps
(0.412 after 40); flipped 0.000; GRPO model on blank and shuffled at the constant's level. docs/benchmarks.md
"Learning" has the seeds and times: 1 passed in 552 s at load average ~9 on the 2 shared cores (SFT 229 s, GRPO 143 s,
flipped 139 s); the 3-minute CI budget was not measured on a quiet machine.

RLVID_LEARNING_CONTROL=blank runs the same test with every video blank (train, short and held-out clips): it must
fail, which shows the margins need the pixels (recorded in docs/benchmarks.md "Learning").
"""

from __future__ import annotations

import os

import pytest
from pixel_learning import MIOU, READING_SETTING, run_pixel_learning, summary


@pytest.mark.slow
def test_grpo_reads_the_flash_time_from_the_pixels(tmp_path, one_thread):
    control = os.environ.get("RLVID_LEARNING_CONTROL") or None
    r = run_pixel_learning(tmp_path, seed=0, control=control, **READING_SETTING)
    print(summary(r))
    sft, grpo, flipped = (r[k][MIOU] for k in ("sft", "grpo", "flipped"))
    assert r["sft"]["eval/temporal_grounding/count"] >= 48
    assert r["constant"] <= 0.10 + 1e-9 and r["constant_oracle"] <= 0.15  # the task: a constant answer fails
    assert grpo >= 0.5
    assert grpo >= sft + 0.10
    assert r["blank"] <= r["constant"] + 0.05
    assert r["shuffled"] <= r["constant"] + 0.05
    assert flipped <= sft + 0.02
