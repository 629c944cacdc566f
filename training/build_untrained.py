"""Build the tiny UNTRAINED models for the tabs that have no training data here.

    python -m training.build_untrained [--out-root models] [--tokenizer models/stdlib-bert-mlm]

No data for extractive question answering, natural-language inference or French-English
translation exists on this machine, and a summarizer trained from scratch needs more CPU time
than a session has, so these four models are random (seeded) networks of
the right architecture with a working tokenizer. They let the tabs run end to end -- windows,
offsets, start/end logits, entailment scores, encoder-decoder generation -- and their answers
are noise. Each folder's README.md says so in its first line.

* ``untrained-bert-qa``: BertForQuestionAnswering (2 layers, 64 wide) with the stdlib
  WordPiece tokenizer of ``stdlib-bert-mlm`` (``--tokenizer``);
* ``untrained-bert-nli``: BertForSequenceClassification, same size and tokenizer, with
  id2label 0 contradiction / 1 neutral / 2 entailment (the MNLI order of roberta-large-mnli),
  for the zero-shot tab's NLI method;
* ``untrained-bart-summarizer``: BartForConditionalGeneration (2 + 2 layers, 64 wide) with the
  stdlib WordPiece tokenizer ([CLS] = bos, [SEP] = eos and decoder start, [PAD] = pad), for the
  summarization tab;
* ``untrained-marian-fr-en``: MarianMTModel (2 + 2 layers, 64 wide) with a small
  SentencePiece-style BPE tokenizer (Metaspace "▁", ``</s>`` 0, ``<unk>`` 1, ``<pad>`` 2,
  "$A </s>" appended) trained here on :data:`TOKENIZER_TEXT`; decoder_start_token_id = pad,
  as in Helsinki-NLP's opus-mt models. Saved as a plain fast tokenizer (no sentencepiece).

Every folder: config.json, model.safetensors (< 2.5 MB, fp32), tokenizer files,
training.json (``"trained": false``, sizes, seed) and README.md.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training.embedded_common import (
    STDLIB_DOCS,
    command_line,
    finish_report,
    licence_section,
    seed_everything,
    write_outputs,
)

UNTRAINED_LINE = "**untrained: shows the mechanics, not the answers.**"
#: The data behind an untrained model: none for its weights; its tokenizer's vocabulary has a source.
WORDPIECE_DATA = f"none for the weights (random); the tokenizer is stdlib-bert-mlm's WordPiece, learnt from {STDLIB_DOCS}"
MARIAN_DATA = (
    "none for the weights (random); the tokenizer's vocabulary was learnt from the French and English "
    "sentences written for this project in `training/build_untrained.py` (TOKENIZER_TEXT)"
)
MAX_BYTES = 2_500_000  # each model.safetensors stays below this
NLI_LABELS = ("contradiction", "neutral", "entailment")

# A few sentences in each language, only to give the Marian tokenizer a vocabulary.
TOKENIZER_TEXT = (
    "Le chat dort sur le tapis pendant que le chien garde la porte.",
    "La bibliothèque standard de Python contient des modules pour presque tout.",
    "Ouvrez le fichier, lisez les lignes et fermez-le ensuite.",
    "Il fait froid en hiver et chaud en été à Paris.",
    "Nous avons mangé du pain, du fromage et des pommes.",
    "Cette fonction renvoie la longueur de la liste.",
    "Les enfants jouent dans le jardin après l'école.",
    "Je voudrais un café, s'il vous plaît.",
    "Où est la gare ? Elle est à côté de la mairie.",
    "Le programme lève une exception si le fichier n'existe pas.",
    "The cat sleeps on the rug while the dog guards the door.",
    "Python's standard library contains modules for almost everything.",
    "Open the file, read the lines and close it afterwards.",
    "It is cold in winter and hot in summer in Paris.",
    "We ate bread, cheese and apples.",
    "This function returns the length of the list.",
    "The children play in the garden after school.",
    "I would like a coffee, please.",
    "Where is the station? It is next to the town hall.",
    "The program raises an exception if the file does not exist.",
)


@dataclass
class UntrainedConfig:
    out_root: str = "models"  # the three folders go under here
    tokenizer: str = "models/stdlib-bert-mlm"  # the WordPiece tokenizer the BERT models reuse
    seed: int = 1337  # torch seed for the random weights (each model re-seeds)
    threads: int = 2  # torch intra-op threads
    # BERT (QA and NLI)
    bert_hidden: int = 64  # width
    bert_layers: int = 2  # transformer blocks
    bert_heads: int = 2  # attention heads (32 dims each)
    bert_intermediate: int = 128  # feed-forward width
    bert_positions: int = 256  # positions = the tokenizer's model_max_length
    # Marian (translation)
    marian_vocab: int = 1000  # BPE vocabulary target (a tiny text gives fewer)
    marian_d_model: int = 64  # width
    marian_layers: int = 2  # encoder and decoder blocks each
    marian_heads: int = 2  # attention heads
    marian_ffn: int = 128  # feed-forward width
    marian_positions: int = 128  # positions
    initializer_range: float = 0.2  # larger than 0.02, so that random scores differ visibly


def card(name: str, what: str, loads: str, report: dict) -> str:
    return f"""# {name}

{UNTRAINED_LINE}

{what}

Its weights are random (seeded, `torch.manual_seed({report['config']['seed']})`): it has never seen a
single example of its task, so whatever it answers is noise. It exists so that the playground's tab
runs end to end offline -- tokenisation, windows, logits, scores, decoding -- and a person can see
*how* the task is computed; a trained model from the Hub gives the answers.

| | |
|---|---|
| architecture | {report['architecture']} |
| parameters | {report['params']:,} ({report['model_bytes']:,} bytes fp32) |
| tokenizer | {report['tokenizer']} |

Loads with {loads}. Rebuild: `{report['command']}` (see `training/build_untrained.py`).

{licence_section(report['data']).rstrip()}
"""


def bert_config(tokenizer, cfg: UntrainedConfig, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.bert_hidden,
        num_hidden_layers=cfg.bert_layers,
        num_attention_heads=cfg.bert_heads,
        intermediate_size=cfg.bert_intermediate,
        max_position_embeddings=cfg.bert_positions,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=cfg.initializer_range,
        **extra,
    )


def _seq2seq_sizes(cfg: UntrainedConfig) -> dict:
    """The encoder-decoder sizes the untrained BART and Marian share."""
    return {
        "d_model": cfg.marian_d_model,
        "encoder_layers": cfg.marian_layers,
        "decoder_layers": cfg.marian_layers,
        "encoder_attention_heads": cfg.marian_heads,
        "decoder_attention_heads": cfg.marian_heads,
        "encoder_ffn_dim": cfg.marian_ffn,
        "decoder_ffn_dim": cfg.marian_ffn,
    }


def marian_tokenizer(cfg: UntrainedConfig):
    """A SentencePiece-style BPE (Metaspace) as a plain fast tokenizer: "$A </s>", pad 2."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.marian_vocab, min_frequency=1, special_tokens=["</s>", "<unk>", "<pad>"], show_progress=False
    )
    tok.train_from_iterator(TOKENIZER_TEXT, trainer=trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=cfg.marian_positions,
    )


def _save(model, tokenizer, out: Path, report: dict, command: str, cfg: UntrainedConfig, card_text) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report["params"] = sum(p.numel() for p in model.parameters())
    finish_report(report, out, command, asdict(cfg))
    assert report["model_bytes"] < MAX_BYTES, f"{out}: {report['model_bytes']} bytes"
    write_outputs(out, report, card_text(report))
    return report


def build(cfg: UntrainedConfig, command: str) -> dict:
    from transformers import (
        BertTokenizer,
        BartConfig,
        BartForConditionalGeneration,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        GenerationConfig,
        MarianConfig,
        MarianMTModel,
    )

    seed_everything(cfg.seed, cfg.threads)
    root = Path(cfg.out_root)
    # BertTokenizer, not AutoTokenizer: the source folder is a ModernBERT (no token types), the
    # BERT models here take token_type_ids for question/context and premise/hypothesis pairs.
    wordpiece = BertTokenizer.from_pretrained(cfg.tokenizer)
    base = {"trained": False, "seed": cfg.seed}
    reports = {}

    # Extractive QA.
    torch.manual_seed(cfg.seed)
    qa = BertForQuestionAnswering(bert_config(wordpiece, cfg))
    reports["untrained-bert-qa"] = _save(
        qa, wordpiece, root / "untrained-bert-qa",
        {**base, "architecture": f"BertForQuestionAnswering, {cfg.bert_layers} layers, {cfg.bert_hidden} wide, "
                                 f"{cfg.bert_positions} positions",
         "tokenizer": f"the uncased {len(wordpiece)}-token stdlib WordPiece of stdlib-bert-mlm",
         "data": WORDPIECE_DATA},
        command, cfg,
        lambda r: card("untrained-bert-qa",
                       "A random BERT with an extractive question-answering head (start and end logits over the "
                       "context's tokens).",
                       "`AutoModelForQuestionAnswering` / `AutoTokenizer`", r),
    )

    # NLI (zero-shot).
    torch.manual_seed(cfg.seed)
    nli = BertForSequenceClassification(bert_config(
        wordpiece, cfg, num_labels=3, id2label=dict(enumerate(NLI_LABELS)),
        label2id={label: i for i, label in enumerate(NLI_LABELS)},
    ))
    reports["untrained-bert-nli"] = _save(
        nli, wordpiece, root / "untrained-bert-nli",
        {**base, "architecture": f"BertForSequenceClassification (3 labels: {', '.join(NLI_LABELS)}), "
                                 f"{cfg.bert_layers} layers, {cfg.bert_hidden} wide",
         "tokenizer": f"the uncased {len(wordpiece)}-token stdlib WordPiece of stdlib-bert-mlm",
         "data": WORDPIECE_DATA,
         "labels": list(NLI_LABELS)},
        command, cfg,
        lambda r: card("untrained-bert-nli",
                       "A random BERT with a 3-way natural-language-inference head (premise, hypothesis -> "
                       "contradiction / neutral / entailment), the kind the zero-shot tab turns into label scores.",
                       "`AutoModelForSequenceClassification` / `AutoTokenizer`", r),
    )

    # Summarization (encoder-decoder), on the stdlib WordPiece: [CLS] text [SEP] in, [SEP] starts.
    # BART takes no token_type_ids, so this copy of the tokenizer does not make them.
    bart_tok = BertTokenizer.from_pretrained(cfg.tokenizer, model_input_names=["input_ids", "attention_mask"])
    bos, eos, pad = bart_tok.cls_token_id, bart_tok.sep_token_id, bart_tok.pad_token_id
    torch.manual_seed(cfg.seed)
    bart = BartForConditionalGeneration(BartConfig(
        vocab_size=len(bart_tok),
        **_seq2seq_sizes(cfg),
        max_position_embeddings=cfg.bert_positions,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=eos,
        init_std=cfg.initializer_range,
        tie_word_embeddings=True,
    ))
    bart.generation_config = GenerationConfig(
        pad_token_id=pad, bos_token_id=bos, eos_token_id=eos, decoder_start_token_id=eos, forced_eos_token_id=eos,
        do_sample=False, num_beams=1, max_new_tokens=32,
    )
    reports["untrained-bart-summarizer"] = _save(
        bart, bart_tok, root / "untrained-bart-summarizer",
        {**base, "architecture": f"BartForConditionalGeneration, {cfg.marian_layers} + {cfg.marian_layers} layers, "
                                 f"{cfg.marian_d_model} wide, tied embeddings",
         "tokenizer": f"the uncased {len(wordpiece)}-token stdlib WordPiece of stdlib-bert-mlm",
         "data": WORDPIECE_DATA,
         "decoder_start_token_id": eos},
        command, cfg,
        lambda r: card("untrained-bart-summarizer",
                       "A random BART encoder-decoder (the architecture of distilbart-cnn summarizers): the encoder "
                       "reads the text, the decoder writes random tokens until `max_new_tokens`.",
                       "`AutoModelForSeq2SeqLM` / `AutoTokenizer` (then `generate()`)", r),
    )

    # Translation (encoder-decoder).
    marian_tok = marian_tokenizer(cfg)
    pad, eos = marian_tok.pad_token_id, marian_tok.eos_token_id
    torch.manual_seed(cfg.seed)
    marian = MarianMTModel(MarianConfig(
        vocab_size=len(marian_tok),
        **_seq2seq_sizes(cfg),
        max_position_embeddings=cfg.marian_positions,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
        init_std=cfg.initializer_range,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    ))
    marian.generation_config = GenerationConfig(
        pad_token_id=pad, eos_token_id=eos, decoder_start_token_id=pad, forced_eos_token_id=eos,
        bad_words_ids=[[pad]], do_sample=False, num_beams=1, max_new_tokens=32,
    )
    reports["untrained-marian-fr-en"] = _save(
        marian, marian_tok, root / "untrained-marian-fr-en",
        {**base, "architecture": f"MarianMTModel, {cfg.marian_layers} + {cfg.marian_layers} layers, "
                                 f"{cfg.marian_d_model} wide, shared embeddings",
         "tokenizer": f"a {len(marian_tok)}-token SentencePiece-style BPE (Metaspace) trained on "
                      f"{len(TOKENIZER_TEXT)} French and English sentences in build_untrained.py",
         "data": MARIAN_DATA,
         "decoder_start_token_id": pad},
        command, cfg,
        lambda r: card("untrained-marian-fr-en",
                       "A random Marian encoder-decoder (the architecture of Helsinki-NLP's opus-mt translation "
                       "models) with a tiny French/English tokenizer; decoding starts from `<pad>` as in opus-mt. "
                       "It writes random tokens, in French or English, until `max_new_tokens`.",
                       "`AutoModelForSeq2SeqLM` / `AutoTokenizer` (then `generate()`)", r),
    )
    return reports


def main(argv: list[str] | None = None) -> None:
    defaults = UntrainedConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-root", default=defaults.out_root, help="folder the three model folders go in")
    parser.add_argument("--tokenizer", default=defaults.tokenizer, help="folder of the WordPiece tokenizer to reuse")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    cfg = UntrainedConfig(out_root=args.out_root, tokenizer=args.tokenizer, seed=args.seed)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    build(cfg, command_line("build_untrained", argv))


if __name__ == "__main__":
    main()
