"""Tiny random models built on the fly (seconds), with real tokenizers trained here.

They exercise the real loading code (save_pretrained -> from_pretrained from a folder) and the
real generation paths, with no network."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "Return the number of items in the container.",
    "The socket module provides access to the BSD socket interface.",
    "This function raises ValueError if the argument is negative.",
    "Create a new dictionary with keys from iterable and values set to value.",
    "<script>alert(1)</script> and <b>bold</b> are tokens, not markup.",
] * 20

EOS = "<|endoftext|>"


def byte_level_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=EOS, model_max_length=128
    )


def roberta_style_tokenizer(corpus: list[str], vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with RoBERTa's (and BART's) special tokens: <s> A </s></s> B </s> pairs,
    trimmed offsets."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def build_tiny_gpt2(folder: Path, *, n_positions: int = 128, seed: int = 0) -> Path:
    """A 2-layer GPT-2 with a 400-token byte-level BPE vocabulary, saved as safetensors."""
    tokenizer = byte_level_tokenizer()
    torch.manual_seed(seed)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_llama(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer LLaMA (grouped-query attention: 4 heads, 2 KV heads; RMS norm; rotary positions),
    the architecture of SmolLM2, with the byte-level BPE tokenizer, saved as safetensors."""
    tokenizer = byte_level_tokenizer()
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, tie_word_embeddings=True,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
