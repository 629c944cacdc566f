"""The cyclic garbage collector, told which objects live as long as the process.

A full collection (generation 2) walks every object the collector tracks, holding the
interpreter lock. Once Gradio, torch, transformers and a model are loaded, the app's process
holds about 570,000 of them: a full pass took 250-360 ms, during which the process did nothing
else (no token relayed, no request admitted, no result sent), and one came every few rounds of 16
requests. The decoding process's took 80-130 ms, a stall of every sequence in the batch.
`gc.freeze()` moves the objects alive at that moment to a permanent generation that collections
no longer walk; what is created afterwards is collected as before (the few-object passes of
generations 0 and 1 stay under 3 ms)."""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect what is garbage now (the objects frozen before included: a model that was unloaded
    goes, reference cycles and all), then freeze what is left. Called when the long-lived objects
    change: once the app is built, after a model is loaded, and when a decoding process has its
    model. The collection before the freeze is itself a full pass (a few hundred ms), paid once
    then instead of during serving."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
