"""The logit lens: what the model would predict if it stopped after each layer, read by sending
that layer's hidden state through the model's own final norm and output head.

transformers 5 returns one hidden state per layer plus the embeddings; the last one has already
been through the final norm (so the last layer's lens is the model's own output, which the tests
check). Where each architecture keeps its final norm and head differs: the table below names it
for the architectures models.yaml uses; another architecture gets a plain reason instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from backend.inspect.records import Candidate, LensLayer, Unavailable

Head = Callable[[torch.Tensor], torch.Tensor]


def _decoder_only(norm: Callable[[torch.nn.Module], torch.nn.Module]) -> Callable[[torch.nn.Module], tuple[Head, Head]]:
    def parts(model: torch.nn.Module) -> tuple[Head, Head]:
        return norm(model), model.lm_head

    return parts


def _bart_like(model: torch.nn.Module) -> tuple[Head, Head]:
    """BART and Marian: post-LN layers, so no final norm (mBART has decoder.layer_norm); the
    head adds final_logits_bias."""
    decoder = model.get_decoder()
    norm = getattr(decoder, "layer_norm", None) or (lambda h: h)
    return norm, lambda h: model.lm_head(h) + model.final_logits_bias[0]


def _t5(model: torch.nn.Module) -> tuple[Head, Head]:
    """T5: the decoder's final RMS norm; tied checkpoints scale by d_model^-0.5 before the head."""
    scale = model.config.d_model**-0.5 if getattr(model.config, "scale_decoder_outputs", False) else 1.0
    return model.get_decoder().final_layer_norm, lambda h: model.lm_head(h * scale)


LENS_PARTS: dict[str, Callable[[torch.nn.Module], tuple[Head, Head]]] = {
    "gpt2": _decoder_only(lambda m: m.transformer.ln_f),
    "llama": _decoder_only(lambda m: m.model.norm),
    "bart": _bart_like,
    "marian": _bart_like,
    "mbart": _bart_like,
    "t5": _t5,
}


def logit_lens(
    model: torch.nn.Module, hidden: Sequence[torch.Tensor], chosen: int, decode: Callable[[int], str], k: int = 5
) -> tuple[LensLayer, ...] | Unavailable:
    """Per layer (0 = embeddings, L = the last layer): the top-k tokens and the chosen token's rank."""
    model_type = getattr(model.config, "model_type", "?")
    parts = LENS_PARTS.get(model_type)
    if parts is None:
        return Unavailable(
            f"the logit lens needs to know where a {model_type!r} model keeps its final norm and output "
            f"head; this playground knows {', '.join(sorted(LENS_PARTS))}."
        )
    norm, head = parts(model)
    last = len(hidden) - 1
    with torch.inference_mode():
        states = torch.stack([h if i == last else norm(h) for i, h in enumerate(hidden)])
        probs = torch.softmax(head(states).float(), dim=-1)
    top = probs.topk(k, dim=-1)
    chosen_p = probs[:, chosen]
    ranks = (probs > chosen_p[:, None]).sum(dim=-1) + 1
    layers = []
    for i in range(len(hidden)):
        name = "embeddings" if i == 0 else (f"layer {i} (output)" if i == last else f"layer {i}")
        layers.append(
            LensLayer(
                layer=i,
                name=name,
                top=tuple(Candidate(int(t), decode(int(t)), float(p)) for t, p in zip(top.indices[i], top.values[i])),
                chosen_rank=int(ranks[i]),
                chosen_prob=float(chosen_p[i]),
            )
        )
    return tuple(layers)
