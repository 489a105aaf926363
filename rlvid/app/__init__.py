"""The top floor: what the `rlvid` commands run. `compose` turns a recipe into trainers (the composition
root); `train`, `mdpo`, `eval` and `select` are the commands built on it. Nothing below imports this package."""
