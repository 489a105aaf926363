#!/usr/bin/env bash
# Wheels the lent GPU machine lacks for scripts/gpu_check.py, downloaded here into wheels/ (git-ignored).
#
# The GPU image (Python 3.12, torch 2.11 + CUDA 13, transformers 5.17, accelerate, peft) has no deepspeed,
# omegaconf, PyAV or TRL and reaches no package index, so they travel with the working tree (`carry`),
# ~41 MiB in all, under the 64 MiB a device call carries. Pins (checked 2026-11, CPython 3.12 manylinux):
#   deepspeed 0.19.8     PyPI has only its sdist: built here into a pure-Python wheel (DS_BUILD_OPS=0; its
#                        ops are JIT-compiled on the GPU machine with the image's ninja + nvcc, e.g. cpu_adam
#                        for the ZeRO offload part). Requires torch>=2.0 (2.11 is fine), pydantic>=2, hjson;
#                        the rest of its needs (einops msgpack ninja numpy packaging psutil py-cpuinfo tqdm
#                        nvidia-ml-py) are in the image.
#   hjson, pydantic, pydantic-core, annotated-types, typing-inspection: deepspeed's missing needs
#   omegaconf 2.4.0      rlvid's recipe loader
#   av 19.0.2            PyAV, rlvid's video decoding (abi3 manylinux_2_28 wheel, ~33 MiB)
#   trl 1.16.0 + datasets, dill, multiprocess, defusedxml: TRL's selective_log_softmax (rlvid.algos.logprobs)
#
#   bash scripts/gpu_wheels.sh            # -> wheels/*.whl; PYTHON=... picks the Python that builds deepspeed
# On the device (`run` tool, carry: ["wheels"]), start the command with:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site wheels/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=wheels
PINS=(omegaconf==2.4.0 av==19.0.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
      defusedxml==0.7.1 hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
      typing-inspection==0.4.5)
mkdir -p "$OUT"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$OUT" "${PINS[@]}"
if ! ls "$OUT"/deepspeed-0.19.8-*.whl >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" deepspeed==0.19.8
  DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" "$tmp"/deepspeed-0.19.8.tar.gz
  rm -rf "$tmp"
fi
ls -l "$OUT"
du -ch "$OUT"/*.whl | tail -1
