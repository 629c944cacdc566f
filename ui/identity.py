"""Who is asking: the anonymous owner id of a browser, or the session of an API client.

The page keeps a random id in the browser's local storage (a reload keeps it, a server restart
does not lose it); a load event hands it to a per-session gr.State that every run and every
inspection takes as an input. API clients never run that event: their State stays empty and
their owner is their session. backend.history decides what an owner may read.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from backend.history import owner_of

#: Reads the browser's id from local storage, making one the first time (a random UUID from
#: crypto.getRandomValues, which also works on a plain-http page where randomUUID does not).
BROWSER_ID_JS = """
(current) => {
  const key = "transformers-playground-owner";
  const fresh = () => {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  try {
    let id = window.localStorage.getItem(key);
    if (!id) { id = fresh(); window.localStorage.setItem(key, id); }
    return id;
  } catch (e) {
    return null;  // storage blocked: the owner is this page's session
  }
}
"""


@dataclass(frozen=True)
class Identity:
    """The per-session holder of the browser's id; pass `state` as an input of every event that
    runs or reads a run, and turn it into an owner with `owner()`."""

    state: gr.State

    @staticmethod
    def owner(browser_id: str | None, request: gr.Request | None) -> str:
        return owner_of(browser_id, None if request is None else request.session_hash)


def build_identity(demo: gr.Blocks) -> Identity:
    """Inside the Blocks: the State, and the load event that fills it from local storage."""
    state = gr.State(None)
    carrier = gr.Textbox(visible=False)

    def adopt(browser_id: str | None) -> str | None:
        return browser_id

    demo.load(adopt, inputs=[carrier], outputs=[state], js=BROWSER_ID_JS, api_visibility="private")
    return Identity(state)
