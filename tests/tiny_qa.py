"""Tiny random extractive-QA encoders (BERT, DistilBERT, RoBERTa) built on the fly, with real
tokenizers trained here: WordPiece for the BERTs, byte-level BPE for RoBERTa.

Untrained, so their answers are arbitrary; they exercise the real loading code and every step
of the span search. `zebra` and `giraffe` are single tokens in each vocabulary, so tests can
steer the logits towards them."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForQuestionAnswering,
)

from tests.tiny_models import roberta_style_tokenizer

QA_CORPUS = [
    "The zebra lives near the giraffe on the wide plain.",
    "Where does the zebra live? What lives near the river?",
    "The socket module provides access to the BSD socket interface.",
    "This function raises ValueError if the argument is negative.",
    "Return the number of items in the container.",
    "Café crème and naïve résumé: accents are characters too.",
] * 20

#: Tokens each window holds, special tokens included.
WINDOW = 64
ARCHITECTURES = ("bert", "distilbert", "roberta")


def wordpiece_tokenizer(*, model_input_names: list[str], padding_side: str = "right") -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer with BERT's special tokens and [CLS] A [SEP] B [SEP] pairs."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(QA_CORPUS, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    tokenizer.post_processor = processors.BertProcessing(
        ("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=WINDOW,
        padding_side=padding_side,
        model_input_names=model_input_names,
    )


def roberta_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with RoBERTa's special tokens, <s> A </s></s> B </s> pairs, trimmed offsets."""
    return roberta_style_tokenizer(QA_CORPUS, 500, WINDOW)


def build_tiny_qa(folder: Path, architecture: str, *, padding_side: str = "right", seed: int = 0) -> Path:
    """A 2-layer, 32-wide QA model of `architecture` ("bert", "distilbert" or "roberta") with its
    tokenizer, saved as safetensors. `padding_side="left"` makes a BERT that, like XLNet in the
    old pipeline, reads the context before the question."""
    torch.manual_seed(seed)
    size = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 32, "intermediate_size": 64}
    if architecture == "bert":
        tokenizer = wordpiece_tokenizer(
            model_input_names=["input_ids", "token_type_ids", "attention_mask"], padding_side=padding_side
        )
        model = BertForQuestionAnswering(
            BertConfig(vocab_size=len(tokenizer), max_position_embeddings=WINDOW, pad_token_id=0, **size)
        )
    elif architecture == "distilbert":
        tokenizer = wordpiece_tokenizer(model_input_names=["input_ids", "attention_mask"], padding_side=padding_side)
        model = DistilBertForQuestionAnswering(
            DistilBertConfig(
                vocab_size=len(tokenizer), max_position_embeddings=WINDOW, n_layers=2, n_heads=2, dim=32, hidden_dim=64
            )
        )
    elif architecture == "roberta":
        tokenizer = roberta_tokenizer()
        # RoBERTa's positions start after the padding index: 2 more than the window
        model = RobertaForQuestionAnswering(
            RobertaConfig(
                vocab_size=len(tokenizer),
                max_position_embeddings=WINDOW + 2,
                pad_token_id=1,
                bos_token_id=0,
                eos_token_id=2,
                type_vocab_size=1,
                **size,
            )
        )
    else:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}.")
    # a wider head than the default init (std 0.02): logits spread over several units, so the
    # span scores of an untrained model are far from ties and a wrong span cannot pass as right
    torch.nn.init.normal_(model.qa_outputs.weight, std=0.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
