"""Extractive question-answering examples built from text every machine has.

Two sources, both cut so that the answer is a span of the context:

* the Python standard library's docstrings: a function whose docstring says "Return(s) X." gives
  "What does f return?" -> X; "Raise(s) E if C." gives "What does f raise if C?" -> E and
  "When does f raise E?" -> C. The context is that function's entry beside two to four other
  entries of the same module, shuffled, so the model has to find the right name first;
* Debian's package descriptions: "This package contains/provides X." gives "What does the p
  package contain/provide?" -> X; "written by A B" gives "Who wrote p?", "written in Go" "Which
  language is p written in?", "released in 1998" "When was p released?", "p is a Y." "What is
  p?", "It supports Z." "What does p support?" (at most one of each kind per package), the
  context that package's description beside one or two others.

Held out by source: whole modules (the corpus's held-out modules and a stable 10 % of the rest)
and whole package families. Every example is (id, question, context, answer_start, answer_text).
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from training import corpus, machine_text

HELDOUT_PERCENT = 10
MAX_CONTEXT_WORDS = 170


@dataclass(frozen=True)
class Example:
    id: str
    source: str  # "stdlib:<module>" or "debian:<package>"
    question: str
    context: str
    answer_start: int
    answer: str


_RETURN_RE = re.compile(r"^Returns? (?!None\b|nothing\b)([^.;:]{3,120}?)\.$")
_RAISE_RE = re.compile(r"^(?:Raises?|It raises) (\w+(?:Error|Exception|Warning|Exit))(?: exception)? (if|when) ([^.;:]{3,120}?)\.$")
_PROVIDES_RE = re.compile(r"^(?:This package|It|This library|This tool|This program) (contains|provides|includes|offers) ([^.;:]{3,140}?)\.$")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")

RETURN_QUESTIONS = ("What does {f} return?", "What is returned by {f}?", "What do you get back from {f}()?",
                    "{f} returns what?", "What is the return value of {f}?")
RAISE_WHAT = ("What does {f} raise if {c}?", "Which exception does {f} raise when {c}?")
RAISE_WHEN = ("When does {f} raise {e}?", "In which case does {f} raise {e}?")
PROVIDE_QUESTIONS = {
    "contains": ("What does the {p} package contain?", "What is in the {p} package?"),
    "provides": ("What does the {p} package provide?", "What does {p} provide?"),
    "includes": ("What does the {p} package include?", "What is included in {p}?"),
    "offers": ("What does the {p} package offer?", "What does {p} offer?"),
}


def flat(text: str) -> str:
    return " ".join(text.split())


def module_held_out(name: str) -> bool:
    top = name.split(".")[0]
    return top in corpus.HELDOUT_NAMES or machine_text.held_out("module:" + top, HELDOUT_PERCENT)


def _entries(module_name: str) -> list[tuple[str, str]]:
    """(short name, flattened docstring) of the module's documented public functions and methods."""
    try:
        module = corpus._import_quietly(module_name)  # noqa: SLF001 -- the corpus's quiet import
    except Exception:  # noqa: BLE001 -- a module that does not import on this build has no entries
        return []
    out = []
    for qualname, obj in corpus._documented_members(module):  # noqa: SLF001
        if isinstance(obj, property) or inspect.isclass(obj):
            continue
        doc = inspect.getdoc(obj)
        if doc:
            short = qualname.split(".", 1)[1] if "." in qualname else qualname
            out.append((short, flat(doc)))
    return out


def _context(target: tuple[str, str], others: list[tuple[str, str]], rng: random.Random) -> tuple[str, int]:
    """The entries joined (target among them, shuffled), with the target's offset."""
    chosen = [target] + rng.sample(others, min(len(others), rng.randint(2, 4)))
    rng.shuffle(chosen)
    words = sum(len(d.split()) for _, d in chosen)
    while words > MAX_CONTEXT_WORDS and len(chosen) > 1:
        drop = next(i for i, e in enumerate(chosen) if e is not target)
        words -= len(chosen.pop(drop)[1].split())
    text, offset = "", 0
    for entry in chosen:
        if entry is target:
            offset = len(text)
        text += f"{entry[0]}: {entry[1]}\n"
    return text.strip(), offset


def stdlib_examples(module_names: list[str], seed: int) -> Iterator[Example]:
    rng = random.Random(seed)
    for module_name in module_names:
        entries = [e for e in _entries(module_name) if len(e[1].split()) <= 120]
        if len(entries) < 3:
            continue
        for target in entries:
            others = [e for e in entries if e is not target]
            for sentence in _SENTENCE_SPLIT_RE.split(target[1])[:4]:
                qa = []
                if m := _RETURN_RE.match(sentence):
                    qa.append((rng.choice(RETURN_QUESTIONS).format(f=target[0]), m.group(1), m.start(1)))
                if m := _RAISE_RE.match(sentence):
                    qa.append((rng.choice(RAISE_WHAT).format(f=target[0], c=m.group(3)), m.group(1), m.start(1)))
                    qa.append((rng.choice(RAISE_WHEN).format(f=target[0], e=m.group(1)), m.group(3), m.start(3)))
                for question, answer, start_in_sentence in qa:
                    context, offset = _context(target, others, rng)
                    block_start = offset + len(target[0]) + 2
                    where = context.find(sentence, block_start)
                    if where < 0:
                        continue
                    start = where + start_in_sentence
                    assert context[start:start + len(answer)] == answer
                    yield Example(f"stdlib:{module_name}:{target[0]}:{len(answer)}:{start}", f"stdlib:{module_name}",
                                  question, context, start, answer)


#: Questions about a package, from sentences of its description. Each: (name, the sentence's
#: pattern, the answer's group, question templates with {p} the package and {v} the verb's group).
_LANGUAGES = r"C\+\+|C#|C|Python|Perl|Java|Ruby|Go|Rust|OCaml|Haskell|JavaScript|TypeScript|Lua|Tcl|PHP|Fortran|Scheme|Common Lisp|Vala|Erlang|Elixir|Scala|Kotlin|R|Pascal|Ada"
_WHO_VERBS = {"developed": "Who develops {p}?", "written": "Who wrote {p}?", "created": "Who created {p}?",
              "maintained": "Who maintains {p}?", "designed": "Who designed {p}?"}
_WHEN_VERBS = {"created": "When was {p} created?", "released": "When was {p} released?", "founded": "When was {p} founded?",
               "started": "When was {p} started?", "written": "When was {p} written?", "developed": "When was {p} developed?",
               "introduced": "When was {p} introduced?"}
DEBIAN_PATTERNS = (
    ("provides", _PROVIDES_RE, 2, None),
    ("who", re.compile(r"\b(developed|written|created|maintained|designed) by ((?!the\b)[A-Z][\w-]+(?: (?:[A-Z][\w-]+|van|von|de|der)){1,3})(?=[\s,.;]|$)"), 2, None),
    ("language", re.compile(rf"\bwritten (?:entirely |mainly |mostly )?in (?:pure )?({_LANGUAGES})(?=[\s,.;]|$)"), 1,
     ("Which language is {p} written in?", "In which programming language is {p} written?", "What language is {p} written in?")),
    ("when", re.compile(r"\b(created|released|founded|started|written|developed|introduced) in (1[89]\d\d|20[0-2]\d)\b"), 2, None),
    ("what", re.compile(r"^(\S+) is (an? [^.;:]{5,120}?)\.$"), 2, ("What is {p}?", "What is {p} exactly?")),
    ("supports", re.compile(r"\b(?:It|This package|This library|This program|This tool) (?:also )?supports ([^.;:]{5,120}?)\.$"), 1,
     ("What does {p} support?", "Which features does {p} support?", "What is supported by {p}?")),
)

#: The question templates of the kinds that have them (the others ask by their verb).
_TEMPLATES = {kind: templates for kind, _, _, templates in DEBIAN_PATTERNS if templates}


def _question(kind: str, m: re.Match, package: str, rng: random.Random) -> str | None:
    if kind == "provides":
        return rng.choice(PROVIDE_QUESTIONS[m.group(1)]).format(p=package)
    if kind == "who":
        return _WHO_VERBS[m.group(1)].format(p=package)
    if kind == "when":
        return _WHEN_VERBS[m.group(1)].format(p=package)
    if kind == "what":  # only "<package> is a ...": the subject must name the package
        subject = m.group(1).lower().strip(",")
        if subject not in (package.lower(), package.lower().split("-")[0]):
            return None
        return rng.choice(_TEMPLATES[kind]).format(p=m.group(1).strip(","))
    return rng.choice(_TEMPLATES[kind]).format(p=package)


def debian_examples(descriptions: list[tuple[str, str, str]], seed: int) -> Iterator[Example]:
    """From (package, body, synopsis) triples: at most one question of each kind per package
    (what it provides, who made it, its language, when it was made, what it is, what it supports)."""
    rng = random.Random(seed)
    for i, (package, body, synopsis) in enumerate(descriptions):
        asked: set[str] = set()
        for sentence in _SENTENCE_SPLIT_RE.split(body):
            for kind, pattern, group, _ in DEBIAN_PATTERNS:
                if kind in asked:
                    continue
                m = pattern.search(sentence)
                question = _question(kind, m, package, rng) if m else None
                if question is None:
                    continue
                example = _debian_example(descriptions, rng, package, body, synopsis, sentence, m, group, question, f"{i}:{kind}")
                if example is not None:
                    asked.add(kind)
                    yield example


def _debian_example(descriptions, rng, package, body, synopsis, sentence, m, group, question, key) -> Example | None:
    """The package's description beside one or two others, shuffled; the answer a span of it."""
    others = [descriptions[rng.randrange(len(descriptions))] for _ in range(rng.randint(1, 2))]
    blocks = [(package, body, synopsis)] + [o for o in others if o[0] != package]
    rng.shuffle(blocks)
    text = ""
    start = -1
    for p, b, s in blocks:
        if p == package:
            at = len(text) + len(f"{p}: {s}. ") + b.find(sentence)
            start = at + m.start(group)
        text += f"{p}: {s}. {b}\n"
    if len(text.split()) > MAX_CONTEXT_WORDS * 1.5:
        return None
    answer = m.group(group).rstrip(".")
    assert text[start:start + len(answer)] == answer
    return Example(f"debian:{package}:{key}", f"debian:{package}", question, text.strip(), start, answer)


def build(seed: int, module_names: list[str]) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples)."""
    train, held = [], []
    for ex in stdlib_examples(module_names, seed):
        (held if module_held_out(ex.source.split(":", 1)[1]) else train).append(ex)
    pairs = machine_text.synopsis_pairs()
    for ex in debian_examples(pairs, seed):
        group = machine_text.package_group(ex.source.split(":", 1)[1])
        (held if machine_text.held_out("package:" + group, HELDOUT_PERCENT) else train).append(ex)
    return train, held


# ---------------------------------------------------------------------------
# SQuAD's scoring (normalised exact match and token F1), and the overlap baseline
# ---------------------------------------------------------------------------


def normalize(text: str) -> list[str]:
    text = re.sub(r"\b(a|an|the)\b", " ", re.sub(r"[^\w\s]", " ", text.lower()))
    return text.split()


def exact_match(prediction: str, answer: str) -> float:
    return float(normalize(prediction) == normalize(answer))


def f1(prediction: str, answer: str) -> float:
    from collections import Counter

    p, a = normalize(prediction), normalize(answer)
    common = sum((Counter(p) & Counter(a)).values())
    if not p or not a or common == 0:
        return float(p == a)
    precision, recall = common / len(p), common / len(a)
    return 2 * precision * recall / (precision + recall)


def scores(predictions: list[str], answers: list[str]) -> dict:
    n = len(answers)
    return {
        "exact_match": round(100 * sum(map(exact_match, predictions, answers)) / n, 1),
        "f1": round(100 * sum(map(f1, predictions, answers)) / n, 1),
    }


def overlap_baseline(question: str, context: str) -> str:
    """The sentence of the context that shares the most words with the question (SQuAD's sliding
    window idea, at sentence level)."""
    q = set(normalize(question))
    sentences = [s for line in context.splitlines() for s in _SENTENCE_SPLIT_RE.split(line) if s.strip()]
    return max(sentences, key=lambda s: len(q & set(normalize(s))))
