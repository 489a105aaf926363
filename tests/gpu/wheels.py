"""Wheels the lent GPU machine lacks for tests/gpu (it reaches no package index): download, then pack in parts.

The GPU image has torch 2.11 / torchvision 0.26 / transformers 5.17 and no vLLM; vLLM 0.25.0 is
the release built against torch 2.11. `download` fetches, for CPython 3.12 / manylinux x86-64 and
without dependencies, vllm==0.25.0, trl==1.16.0 and rlvid's runtime needs missing from the image,
then the closure of their requirements minus what the image already has (IMAGE_PACKAGES, from the
device notes' package list). `--lean` leaves out vLLM's optional kernel packages (FlashInfer,
TileLang, CUTLASS DSL, ...), which the tests do not need if vLLM imports them lazily (UNVERIFIED
until the first GPU run: add back any that `import vllm` reports missing). `pack` tars the wheels
and splits the tar into parts of at most 56 MiB: one part travels per device call (64 MiB with the
~1 MB working tree). `.whl/` is git-ignored.

    python tests/gpu/wheels.py download --dir .whl/wheels --lean
    python tests/gpu/wheels.py pack --dir .whl/wheels --parts .whl/parts
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ["vllm==0.25.0", "trl==1.16.0", "omegaconf>=2.4", "av>=14", "datasets>=4", "defusedxml", "dill",
         "multiprocess"]
OPTIONAL_KERNELS = {"flashinfer-python", "flashinfer-cubin", "tilelang", "apache-tvm-ffi", "nvidia-cutlass-dsl",
                    "quack-kernels", "humming-kernels", "tokenspeed-mla", "pynvvideocodec", "fastsafetensors",
                    "nvidia-cudnn-frontend", "torchcodec", "torchaudio", "nvtx"}
# The GPU image's Python packages (device notes, KINDS.md, read 2026-11-17).
IMAGE_PACKAGES = set(map(canonicalize_name, """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()))
PLATFORMS = ["manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any"]
ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}


def pip_download(spec: str, dest: Path) -> bool:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12",
           "--implementation", "cp", "-d", str(dest), spec]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return subprocess.run(cmd, capture_output=True, text=True).returncode == 0


def requirements_of(wheel: Path, extras: set[str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    out = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or any(req.marker.evaluate({**ENV, "extra": e}) for e in extras | {""}):
            out.append(req)
    return out


def wheel_name(path: Path) -> str:
    return canonicalize_name(path.name.split("-")[0])


def download(dest: Path, lean: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    skip = IMAGE_PACKAGES | (OPTIONAL_KERNELS if lean else set())
    queue = [Requirement(r) for r in ROOTS]
    seen: set[str] = set()
    missing: list[str] = []
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in seen or name in skip:
            continue
        seen.add(name)
        spec = f"{req.name}{req.specifier}"
        if not pip_download(spec, dest):
            missing.append(spec)  # no py3.12 manylinux wheel (sdist only): build it elsewhere or do without
            continue
        wheel = next(p for p in dest.glob("*.whl") if wheel_name(p) == name)
        queue += requirements_of(wheel, set(req.extras))
    total = sum(p.stat().st_size for p in dest.glob("*.whl"))
    print(f"{len(list(dest.glob('*.whl')))} wheels, {total / 1024**2:.0f} MiB in {dest}")
    if missing:
        print(f"no wheel for: {', '.join(missing)}")


def pack(src: Path, parts: Path, part_mib: int = 56) -> None:
    parts.mkdir(parents=True, exist_ok=True)
    tar = parts / "wheels.tar"
    with tarfile.open(tar, "w") as t:
        for wheel in sorted(src.glob("*.whl")):
            t.add(wheel, arcname=wheel.name)
    data = tar.read_bytes()
    tar.unlink()
    size = part_mib * 1024**2
    n = 0
    for n, start in enumerate(range(0, len(data), size)):
        (parts / f"part-{n:02d}").write_bytes(data[start:start + size])
    print(f"{n + 1} parts of <= {part_mib} MiB in {parts}: one per device call (see tests/gpu/README.md)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download")
    d.add_argument("--dir", default=".whl/wheels")
    d.add_argument("--lean", action="store_true", help="leave out vLLM's optional kernel packages")
    p = sub.add_parser("pack")
    p.add_argument("--dir", default=".whl/wheels")
    p.add_argument("--parts", default=".whl/parts")
    args = ap.parse_args()
    if args.cmd == "download":
        download(Path(args.dir), args.lean)
    else:
        pack(Path(args.dir), Path(args.parts))


if __name__ == "__main__":
    main()
