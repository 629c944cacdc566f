"""The real app with the embedded GPT-2 twice, local and on a real llama.cpp `llama-server`
(tests/llama_server.py), and an engine that is down: the fixture of the remote-engine API and
browser tests."""

from __future__ import annotations

import pytest

from backend.playground import Playground
from backend.settings import REPO_ROOT
from bench.app_process import free_port
from tests.llama_server import gguf_of, llama_server
from tests.offline import offline_settings, served

LOCAL, REMOTE, DOWN = "stdlib-gpt2 (embedded)", "stdlib-gpt2 on llama.cpp", "llama.cpp that is down"


@pytest.fixture(scope="module")
def remote_app(tmp_path_factory: pytest.TempPathFactory):
    """The app with the embedded GPT-2 twice, local and on llama-server, and a server that is down."""
    gguf = gguf_of(REPO_ROOT / "models" / "stdlib-gpt2")
    folder = tmp_path_factory.mktemp("remote")
    with llama_server(gguf) as base_url:
        (folder / "models.yaml").write_text(
            f"""models:
  - name: {LOCAL}
    task: text-generation
    family: decoder
    source: {{path: {REPO_ROOT / "models" / "stdlib-gpt2"}}}
    max_context: 512
    description: the embedded GPT-2, here
  - name: {REMOTE}
    task: text-generation
    family: decoder
    source: {{openai: {{base_url: "{base_url}", model: stdlib-gpt2, engine: llama.cpp, probabilities: raw}}}}
    max_context: 512
    description: the same weights on llama.cpp's server
  - name: {DOWN}
    task: text-generation
    family: decoder
    source: {{openai: {{base_url: "http://127.0.0.1:{free_port()}/v1", model: x, engine: llama.cpp, timeout_s: 5}}}}
    max_context: 512
    description: nothing listens there
""",
            encoding="utf-8",
        )
        playground = Playground(offline_settings(folder, folder / "models.yaml"))
        try:
            with served(playground) as url:
                yield url, playground
        finally:
            playground.close()
