"""Tiny random encoder-decoder models (BART, T5, Marian) built on the fly, with tokenizers trained
here: byte-level BPE for BART, Unigram with a Metaspace pre-tokenizer (SentencePiece style) for
T5 and Marian. Each keeps its family's conventions for the special tokens:

- BART: <s> text </s>; the decoder starts from </s>; the first token is forced to <s>.
- T5: text </s>; the decoder starts from <pad> (id 0).
- Marian: text </s>; the decoder starts from <pad>, which is also the padding id.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from tests.tiny_models import roberta_style_tokenizer

SEQ2SEQ_CORPUS = [
    "The socket module provides access to the BSD socket interface.",
    "This function raises ValueError if the argument is negative.",
    "Return the number of items in the container.",
    "Le module socket donne accès à l'interface des sockets BSD.",
    "Cette fonction lève ValueError si l'argument est négatif.",
    "Renvoie le nombre d'éléments du conteneur.",
] * 20

#: Tokens the encoder reads at most (the decoder's position table has the same size).
CONTEXT = 64
ARCHITECTURES = ("bart", "t5", "marian")
#: BART and Marian share these sizes: 32 wide, 2 encoder and 2 decoder layers.
_SIZE = MappingProxyType(
    {
        "d_model": 32,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
    }
)


def bart_tokenizer() -> PreTrainedTokenizerFast:
    return roberta_style_tokenizer(SEQ2SEQ_CORPUS, 400, CONTEXT)


def sentencepiece_style_tokenizer(specials: list[str]) -> PreTrainedTokenizerFast:
    """Unigram over Metaspace-split words; every input ends with </s>. `specials` come first in
    the vocabulary, in this order (their ids are 0, 1, 2...)."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    tokenizer.train_from_iterator(SEQ2SEQ_CORPUS, trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=CONTEXT, model_input_names=["input_ids", "attention_mask"],
    )


def build_tiny_seq2seq(folder: Path, architecture: str, *, seed: int = 0) -> Path:
    """A 2+2-layer, 32-wide encoder-decoder of `architecture` ("bart", "t5" or "marian") with its
    tokenizer, saved as safetensors."""
    torch.manual_seed(seed)
    if architecture == "bart":
        tokenizer = bart_tokenizer()
        model = BartForConditionalGeneration(
            BartConfig(
                vocab_size=len(tokenizer), max_position_embeddings=CONTEXT, bos_token_id=0, pad_token_id=1,
                eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2,
                tie_word_embeddings=False, **_SIZE,
            )
        )
    elif architecture == "t5":
        tokenizer = sentencepiece_style_tokenizer(["<pad>", "</s>", "<unk>"])
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
                num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False,
            )
        )
    elif architecture == "marian":
        tokenizer = sentencepiece_style_tokenizer(["</s>", "<unk>", "<pad>"])
        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        model = MarianMTModel(
            MarianConfig(
                vocab_size=len(tokenizer), max_position_embeddings=CONTEXT, pad_token_id=pad, eos_token_id=eos,
                decoder_start_token_id=pad, forced_eos_token_id=eos, tie_word_embeddings=False, **_SIZE,
            )
        )
    else:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}.")
    # An untied output layer, wider than the default init: an untrained model whose output
    # embeddings are its input ones keeps predicting the token it was fed (all <pad> for T5);
    # this one writes varied tokens with clear-cut, untied probabilities.
    torch.nn.init.normal_(model.get_output_embeddings().weight, std=0.5)
    if architecture == "bart":
        model.generation_config.forced_bos_token_id = 0  # v5 does not copy it from the config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
