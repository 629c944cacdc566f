"""One teacher-forced forward pass: the model reads the run's own tokens (prompt and the new
tokens before the position) in one go, as it did step by step with its KV cache while generating,
and gives the raw logits at the position, the hidden state after every layer, and the attention
weights. Only the rows of the position leave this module, never the whole tensors.

The cached incremental decode and one full forward differ only in float rounding (about 1e-6
in probability on the embedded models): the inspector's raw probability equals the streamed one
to 1e-4, and its notes say so where the difference shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from backend.registry import Family, LoadedModel

#: Attention weights are only read when all layers' weights of one forward fit in this many bytes
#: (eager attention keeps layers x heads x tokens^2 floats until the forward ends).
ATTENTION_BUDGET_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ForwardAt:
    """What the model computed at one position."""

    logits: torch.Tensor  # (vocab,) raw logits predicting the token at the position
    prefix: torch.LongTensor  # (1, S) the sequence generate() extended at that step
    hidden: tuple[torch.Tensor, ...]  # (hidden,) per layer, embeddings first; the last one after the final norm
    self_attention: tuple[torch.Tensor, ...] | None  # (heads, S) per layer: the position's weights over the prefix
    cross_attention: tuple[torch.Tensor, ...] | None  # (heads, source) per layer (encoder-decoder)
    attention_note: str | None  # why attention was not read, if it was not


def decoder_start(loaded: LoadedModel) -> int:
    """The token an encoder-decoder's decoder starts from (what generate() puts first)."""
    for source in (loaded.model.generation_config, loaded.model.config):
        value = getattr(source, "decoder_start_token_id", None)
        if value is not None:
            return int(value)
    value = loaded.model.generation_config.bos_token_id
    if value is None:
        raise RuntimeError(f"model {loaded.spec.name!r} names no decoder start token")
    return int(value)


def attention_bytes(loaded: LoadedModel, query: int, keys: int) -> int:
    config = loaded.model.config
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", 1)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "num_heads", 1)
    return int(layers) * int(heads) * query * keys * 4


@contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """The model's attention switched to the eager implementation, the only one that returns
    its weights; switched back afterwards. The caller holds the engine (no generation runs)."""
    previous = model.config._attn_implementation
    if previous == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def forward_at(
    loaded: LoadedModel, input_ids: tuple[int, ...], generated: tuple[int, ...], position: int, *, details: bool
) -> ForwardAt:
    """The forward pass that predicts generated[position]. `input_ids` are what the model read
    (a decoder's prompt, an encoder-decoder's source). `details`: hidden states and attention too."""
    model, device = loaded.model, loaded.device
    encoder_decoder = loaded.spec.family is Family.ENCODER_DECODER
    if encoder_decoder:
        prefix = torch.tensor([[decoder_start(loaded), *generated[:position]]], device=device)
    else:
        prefix = torch.tensor([[*input_ids, *generated[:position]]], device=device)
    length = prefix.shape[1]
    keys = length + (len(input_ids) if encoder_decoder else 0)
    want_attention = details and attention_bytes(loaded, length, keys) <= ATTENTION_BUDGET_BYTES
    note = None
    if details and not want_attention:
        needed = attention_bytes(loaded, length, keys) / 2**30
        note = f"attention not read: all layers' weights of this forward would take {needed:.1f} GiB"
    kwargs = {"output_hidden_states": details, "output_attentions": want_attention, "use_cache": False}
    if encoder_decoder:
        source = torch.tensor([list(input_ids)], device=device)
        kwargs.update(input_ids=source, attention_mask=torch.ones_like(source), decoder_input_ids=prefix)
    else:
        kwargs.update(input_ids=prefix, attention_mask=torch.ones_like(prefix))
    with torch.inference_mode():
        if want_attention:
            with eager_attention(model):
                out = model(**kwargs)
        else:
            out = model(**kwargs)
    logits = out.logits[0, -1].float()
    hidden: tuple[torch.Tensor, ...] = ()
    own = cross = None
    if details:
        states = out.decoder_hidden_states if encoder_decoder else out.hidden_states
        hidden = tuple(h[0, -1].float() for h in states)
    if want_attention:
        attentions = out.decoder_attentions if encoder_decoder else out.attentions
        own = tuple(a[0, :, -1].float() for a in attentions)
        if encoder_decoder:
            cross = tuple(a[0, :, -1].float() for a in out.cross_attentions)
    return ForwardAt(logits, prefix, hidden, own, cross, note)


def prompt_logits(loaded: LoadedModel, input_ids: tuple[int, ...]) -> torch.Tensor:
    """A decoder's logits at every prompt position: (tokens, vocab); row i predicts token i + 1."""
    ids = torch.tensor([list(input_ids)], device=loaded.device)
    with torch.inference_mode():
        out = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    return out.logits[0].float()
