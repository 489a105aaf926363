"""The vllm-server client sends the API key named by the recipe, through TRL's real `VLLMClient`, to a local stub
that guards routes the way vLLM's AuthenticationMiddleware does (/v1... need `Authorization: Bearer KEY`, /health
and the weight/dev routes do not). The same check against a real `vllm serve` waits for the vLLM branch (issue 12).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlvid.rollout.vllm_server import api_key_from_env, serve_command, with_api_key

KEY = "rlvid-test-key-0123456789"
GUARDED_PREFIX = ("/v1", "/v2", "/inference", "/cohere")  # vllm/entrypoints/serve/middleware/authenticate.py


class StubVLLM(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append((self.path, auth))
        if self.path.startswith(GUARDED_PREFIX) and auth != f"Bearer {KEY}":
            return self._reply(401, {"error": "Unauthorized"})
        if self.path == "/v1/models":
            return self._reply(200, {"data": [{"id": "tiny"}]})
        return self._reply(200, {"ok": True})

    do_GET = do_POST = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub_server():
    StubVLLM.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubVLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def trl_client(monkeypatch):
    """TRL's VLLMClient with its 'vLLM installed' check waived (the client's HTTP side needs no vLLM)."""
    import trl.generation.vllm_client as vllm_client

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda: True)
    return vllm_client.VLLMClient


def test_without_the_key_the_guarded_routes_refuse(stub_server, trl_client):
    with pytest.raises(Exception, match="401"):
        trl_client(host="127.0.0.1", server_port=stub_server)
    assert ("/v1/models", None) in StubVLLM.seen


def test_with_the_key_every_request_carries_it(stub_server, trl_client, monkeypatch):
    monkeypatch.setenv("RLVID_TEST_VLLM_KEY", KEY)
    client = with_api_key(trl_client, api_key_from_env("RLVID_TEST_VLLM_KEY"))(host="127.0.0.1",
                                                                                server_port=stub_server)
    assert client.model == "tiny"
    response = client.session.post(f"{client.base_url}/v1/chat/completions", json={})
    assert response.status_code == 200
    client.reset_prefix_cache()  # a dev route: vLLM does not check the key there, the client sends it anyway
    sent = {path: auth for path, auth in StubVLLM.seen}
    assert sent["/v1/models"] == sent["/v1/chat/completions"] == sent["/reset_prefix_cache"] == f"Bearer {KEY}"


def test_a_wrong_key_is_refused(stub_server, trl_client):
    with pytest.raises(Exception, match="401"):
        with_api_key(trl_client, "not-the-key-000000")(host="127.0.0.1", server_port=stub_server)


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("RLVID_TEST_VLLM_KEY", raising=False)
    with pytest.raises(ValueError, match=r"rollout.vllm.api_key_env.*RLVID_TEST_VLLM_KEY.*unset or empty"):
        api_key_from_env("RLVID_TEST_VLLM_KEY")


def test_create_server_engine_wraps_the_client_when_the_recipe_names_a_variable(monkeypatch):
    from rlvid.config.schema import Recipe
    from rlvid.rollout import vllm_server

    class Client:
        def __init__(self, **kwargs):
            import requests

            self.session = requests.Session()

    monkeypatch.setattr(vllm_server, "require_trl_client", lambda engine: Client)
    monkeypatch.setattr(vllm_server, "distributed_layout", lambda: (1, 1, 2))  # not the main process: no NCCL
    monkeypatch.setattr(vllm_server, "VLLMServerEngine", lambda client, *a, **k: client)
    monkeypatch.setenv("RLVID_TEST_VLLM_KEY", KEY)
    recipe = Recipe()
    recipe.rollout.vllm.api_key_env = "RLVID_TEST_VLLM_KEY"
    client = vllm_server.create_server_engine(recipe, None, None, None)
    assert client.session.headers["Authorization"] == f"Bearer {KEY}"
    recipe.rollout.vllm.api_key_env = None
    assert "Authorization" not in vllm_server.create_server_engine(recipe, None, None, None).session.headers


def test_serve_command_binds_to_loopback_by_default():
    argv = serve_command("/models/m")
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
