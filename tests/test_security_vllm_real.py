"""The API key against a real `vllm serve` on CPU (runs where vLLM is installed, or RLVID_VLLM_PYTHON; ~3 min).

The server starts with VLLM_API_KEY and the dev endpoints on 127.0.0.1. rlvid's client (TRL's
`VLLMClient` through `with_api_key`) must be refused without the key and served with it; the test
also pins down what vLLM leaves unguarded (docs/security.md), so a vLLM upgrade that changes it
shows up here. Generation itself is not exercised: the tiny model's head_dim (16) is below what
vLLM's CPU attention takes; the vLLM branch (issue 12) adds a `tiny32` preset for that.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests


def _vllm_python() -> str | None:
    """A Python with vLLM: RLVID_VLLM_PYTHON, else this one when it has vLLM (scripts/setup.sh installs it)."""
    if os.environ.get("RLVID_VLLM_PYTHON"):
        return os.environ["RLVID_VLLM_PYTHON"]
    return sys.executable if importlib.util.find_spec("vllm") is not None else None


VLLM_PYTHON = _vllm_python()
KEY = "rlvid-real-key-0123456789abcdef"

pytestmark = pytest.mark.skipif(not VLLM_PYTHON, reason="needs vLLM (setup.sh installs it) or RLVID_VLLM_PYTHON")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from rlvid.models.tiny import make_tiny_model
    from rlvid.rollout.vllm_server import serve_command

    root = tmp_path_factory.mktemp("vllm_key")
    model = make_tiny_model(root / "model", arch="qwen2_5_vl")
    port = _free_port()
    argv = serve_command(str(model), port=port, dtype="float32")
    argv = [a for a in argv if a != "--enable-prefix-caching"]
    cut = argv.index("--weight-transfer-config")  # NCCL weight transfer is GPU-only
    argv = argv[:cut] + argv[cut + 2:]
    argv = [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", argv[2], *argv[3:],
            "--max-num-batched-tokens", "4096"]
    env = {**os.environ, "VLLM_API_KEY": KEY, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_CPU_OMP_THREADS_BIND": "0"}
    log = root / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 480
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 480 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own session: its engine and worker processes
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_real_server_refuses_without_the_key_and_serves_with_it(real_server, monkeypatch):
    import trl.generation.vllm_client as vllm_client

    from rlvid.rollout.vllm_server import api_key_from_env, with_api_key

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda: True)  # the client's HTTP side needs no vLLM
    with pytest.raises(Exception, match="401"):
        vllm_client.VLLMClient(host="127.0.0.1", server_port=real_server)
    monkeypatch.setenv("RLVID_TEST_VLLM_KEY", KEY)
    client = with_api_key(vllm_client.VLLMClient, api_key_from_env("RLVID_TEST_VLLM_KEY"))(
        host="127.0.0.1", server_port=real_server)
    assert client.model  # /v1/models, guarded, served with the key
    base = f"http://127.0.0.1:{real_server}"
    assert requests.post(f"{base}/v1/chat/completions", json={}, timeout=30).status_code == 401


def test_real_server_leaves_dev_routes_unguarded(real_server):
    """What docs/security.md says the key does not protect (vLLM's AuthenticationMiddleware guards /v1 etc. only)."""
    base = f"http://127.0.0.1:{real_server}"
    assert requests.get(f"{base}/health", timeout=30).status_code == 200
    assert requests.get(f"{base}/server_info", timeout=30).status_code == 200
    assert requests.post(f"{base}/reset_prefix_cache", timeout=30).status_code == 200
