"""The Translation tab (encoder-decoder): the shared generative view on Task.TRANSLATION, with
the language pair of the chosen model from its registry entry."""

from __future__ import annotations

from backend.playground import Playground
from backend.registry import Task
from ui.controls import RunControls
from ui.identity import Identity
from ui.tabs.generation import GenerationTab, GenerativeTask, build_generation_tab


def language_pair(playground: Playground, name: str | None) -> str:
    if not name or name not in playground.registry.specs:
        return ""
    options = playground.registry.specs[name].options
    source, target = options.get("source_language"), options.get("target_language")
    if not source or not target:
        return "**Language pair:** not stated in models.yaml"
    return f"**Language pair:** {source} → {target}"


TRANSLATION = GenerativeTask(
    task=Task.TRANSLATION,
    title="Translation",
    api_name="translation",
    input_name="text",
    input_label="Text to translate",
    examples=(  # the embedded translator knows software messages and package descriptions
        "Impossible d'ouvrir le fichier de configuration.",
        "Ce paquet contient les fichiers de développement de la bibliothèque.",
        "Voulez-vous vraiment supprimer ce dossier ?",
        "Le chat dort sur le canapé.",
    ),
    extra_info=language_pair,
)


def build_translation_tab(playground: Playground, controls: RunControls, identity: Identity) -> GenerationTab:
    return build_generation_tab(playground, controls, identity, TRANSLATION)
