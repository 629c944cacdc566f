"""A deterministic text corpus: the Python standard library's own documentation.

Every CPython install carries it, so the project's small models can be
rebuilt anywhere, offline, from the same text. Each module is rendered with
``pydoc`` (the text ``help(module)`` prints) and cleaned so that what is left
reads like docstring English:

* the sections that differ by machine or are boilerplate go (``FILE`` paths,
  the ``MODULE REFERENCE`` URL and disclaimer, ``DATA`` reprs, ``VERSION``,
  ``AUTHOR``, the class-hierarchy tree, ``PACKAGE CONTENTS``);
* class bodies lose pydoc's `` |  `` gutter and are indented by four spaces;
* "Method resolution order", every "... inherited from ..." block, the
  ``__dict__``/``__weakref__`` descriptors and dunder methods with a stock
  slot-wrapper docstring ("Return repr(self).") are dropped;
* enum members dumped as class attributes (``AF_INET = <AddressFamily...>``)
  are dropped;
* memory addresses (``at 0x7f...``) are removed, the interpreter's install
  paths (``sys.executable``, ``sys.prefix``) replaced by placeholders,
  trailing spaces stripped and runs of blank lines collapsed.

Public API:

* :func:`module_names` -- the fixed, sorted list of modules in the corpus;
* :func:`render_module` -- one module's cleaned text;
* :func:`split` -- (train documents, held-out documents), by module name;
* :func:`docstring_pairs` -- (long description, one-line summary) pairs from
  function, class and method docstrings, for summarisation-style models.

Rendering all modules takes a few seconds; nothing is cached on disk. The text
depends on the Python version (docstrings change between releases), so a model
card should record ``sys.version`` next to the numbers.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import pydoc
import re
import sys
import warnings
from collections.abc import Iterable, Iterator

# 130 stdlib modules (pure Python, or C-accelerated with real docstrings) that
# import on CPython 3.11 on Linux without side effects or deprecation warnings.
# Left out on purpose: side effects (antigravity, this), GUI (tkinter, turtle,
# idlelib), tests, modules deprecated in 3.11 (asyncore, cgi, imp, telnetlib,
# ...), readline users (rlcompleter), pages that are mostly constants or
# depend on the build (os, sys, signal, ssl, builtins, ast, http), and pages
# of a few lines (keyword, netrc, colorsys, ...).
MODULE_NAMES: tuple[str, ...] = (
    "abc", "argparse", "asyncio", "base64", "bdb", "bisect", "bz2",
    "calendar", "cmd", "code", "codecs", "codeop", "collections",
    "compileall", "concurrent.futures", "configparser", "contextlib",
    "contextvars", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "doctest", "email.message", "email.parser",
    "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions",
    "ftplib", "functools", "getopt", "gettext", "glob", "graphlib", "gzip",
    "hashlib", "heapq", "hmac", "html.parser", "http.client",
    "http.cookiejar", "http.cookies", "http.server", "imaplib",
    "importlib.metadata", "importlib.resources", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "math", "mimetypes",
    "modulefinder", "numbers", "operator", "optparse", "pathlib", "pdb",
    "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib",
    "pprint", "profile", "pstats", "py_compile", "pyclbr", "queue",
    "random", "re", "runpy", "sched", "secrets", "selectors", "shelve",
    "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3",
    "statistics", "string", "struct", "subprocess", "symtable", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace",
    "traceback", "tracemalloc", "types", "typing", "unittest",
    "unittest.mock", "urllib.error", "urllib.parse", "urllib.request",
    "uuid", "warnings", "wave", "weakref", "wsgiref.util",
    "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax.saxutils",
    "xmlrpc.client", "xmlrpc.server", "zipfile", "zipimport", "zoneinfo",
)

# Held out by name (not at random): never used to train a model or its
# tokenizer; perplexity is measured on these. Prose-heavy, mixed topics.
HELDOUT_NAMES: tuple[str, ...] = (
    "csv", "difflib", "fractions", "heapq", "tempfile", "textwrap", "uuid",
    "zipfile",
)

# pydoc's top-level sections that are kept; the others (FILE, MODULE
# REFERENCE, DATA, VERSION, AUTHOR, CREDITS, DATE, PACKAGE CONTENTS,
# SUBMODULES) are machine-dependent or boilerplate.
_KEPT_SECTIONS = ("NAME", "DESCRIPTION", "CLASSES", "FUNCTIONS")

# A top-level section header: an upper-case line at column 0 ("CLASSES").
_SECTION_RE = re.compile(r"^[A-Z][A-Z ]+$")
# A heading inside a class body ("Methods defined here:",
# "Class methods inherited from Foo:", "Method resolution order:").
_CLASS_HEADING_RE = re.compile(
    r"^(Method resolution order:|[A-Z][\w ,-]* (defined here|inherited from \S+):)$"
)
# pydoc's horizontal rule between class-body sections.
_RULE_RE = re.compile(r"^-{20,}$")
# Memory addresses in reprs ("<function f at 0x7f3a...>") differ per run.
_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")
# An enum member listed as a class attribute ("AF_INET = <AddressFamily.AF_INET: 2>").
_ENUM_MEMBER_RE = re.compile(r"^\w+ = <[\w.]+: .*>$")
# A dunder name at the start of an entry ("__init__(self)", "__hash__ = None").
_DUNDER_RE = re.compile(r"^__\w+__\b")
# Docstrings that CPython gives every slot wrapper; they say nothing.
_STOCK_DOC_RE = re.compile(
    r"^(Return |Implement |Initialize self|Create and return a new object"
    r"|Helper for pickle|Default |Set self|Delete self|dictionary for instance"
    r"|list of weak references|Abstract classes can override|Size of object"
    r"|Support for |Method generated by|This method is called when a class)"
)


def module_names() -> list[str]:
    """Return the corpus's module names, sorted."""
    return sorted(MODULE_NAMES)


def heldout_names() -> list[str]:
    """Return the held-out module names, sorted."""
    return sorted(HELDOUT_NAMES)


def _import_quietly(name: str):
    """Import ``name`` with warnings and any stray output swallowed."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def _split_sections(text: str) -> list[tuple[str, list[str]]]:
    """Split pydoc output into (SECTION NAME, body lines dedented by 4)."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if _SECTION_RE.match(line):
            sections.append((line, []))
        elif sections:  # the "Python Library Documentation: ..." title is skipped
            sections[-1][1].append(line[4:] if line.startswith("    ") else line.strip())
    return sections


def _entries(lines: list[str]) -> list[list[str]]:
    """Group lines into entries: a line at column 0 plus its indented/blank tail."""
    entries: list[list[str]] = []
    for line in lines:
        if line and not line[0].isspace():
            entries.append([line])
        elif entries:
            entries[-1].append(line)
        elif line.strip():  # stray indented text before the first entry
            entries.append([line])
    return entries


def _entry_doc(entry: list[str]) -> str:
    """The first non-blank doc line of an entry ('' if undocumented)."""
    return next((line.strip() for line in entry[1:] if line.strip()), "")


def _keep_entry(entry: list[str]) -> bool:
    """Drop enum-member dumps and dunders that are undocumented or carry a stock docstring."""
    if _ENUM_MEMBER_RE.match(entry[0]):
        return False
    if not _DUNDER_RE.match(entry[0]):
        return True
    doc = _entry_doc(entry)
    return bool(doc) and not _STOCK_DOC_RE.match(doc)


def _clean_entry(entry: list[str]) -> list[str]:
    """Clean one member; nested classes (``class X`` + gutter) recurse."""
    head = entry[0]
    if head.startswith("class ") or " = class " in head:
        return _clean_class(entry)
    return entry


def _clean_class(block: list[str]) -> list[str]:
    """Clean a ``class X(...)`` block: drop the gutter and the boilerplate."""
    head, body = block[0], block[1:]
    # Step 1: strip the " |  " gutter (a bare " |" is an empty line).
    lines = []
    for line in body:
        if line.startswith(" |  "):
            lines.append(line[4:])
        elif line.rstrip() == " |":
            lines.append("")
        elif line.strip():
            lines.append(line.strip())
    # Step 2: cut the body into the docstring part and headed member sections.
    doc: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        if _RULE_RE.match(line):
            continue
        if _CLASS_HEADING_RE.match(line):
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            doc.append(line)
    # Step 3: keep only members defined here, without stock dunders.
    out = [head] + ["    " + line if line else "" for line in doc]
    for heading, section_lines in sections:
        if heading == "Method resolution order:" or " inherited from " in heading:
            continue
        kept = [_clean_entry(e) for e in _entries(section_lines) if _keep_entry(e)]
        if not kept:
            continue
        out += ["", "    " + heading, ""]
        for entry in kept:
            out += ["    " + line if line else "" for line in entry]
    return out


def _clean_classes(lines: list[str]) -> list[str]:
    """Drop the class-hierarchy tree, then clean each class block."""
    out: list[str] = []
    for entry in _entries(lines):
        head = entry[0]
        if head.startswith("class ") or " = class " in head:
            out += _clean_class(entry) + [""]
        # anything else at column 0 is the inheritance tree: skipped
    return out


def _machine_paths() -> list[tuple[str, str]]:
    """(path, placeholder) pairs for this interpreter's install paths, longest first."""
    paths = {sys.executable: "python3"}
    for prefix in {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}:
        if prefix and prefix != "/":
            paths.setdefault(prefix, "<prefix>")
    return sorted(paths.items(), key=lambda kv: -len(kv[0]))


def _tidy(lines: Iterable[str]) -> str:
    """Strip trailing spaces, scrub addresses and paths, collapse blank-line runs."""
    paths = _machine_paths()
    out: list[str] = []
    for line in lines:
        line = _ADDRESS_RE.sub("", line.rstrip())
        for path, placeholder in paths:
            line = line.replace(path, placeholder)
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"


def clean_pydoc(text: str) -> str:
    """Turn pydoc plaintext into docstring-like prose (see the module docstring)."""
    out: list[str] = []
    for name, lines in _split_sections(text):
        if name not in _KEPT_SECTIONS:
            continue
        if name == "NAME":
            out += lines + [""]  # "json - JSON (JavaScript Object Notation) ..."
        elif name == "CLASSES":
            out += _clean_classes(lines)
        elif name == "FUNCTIONS":
            out += [line for e in _entries(lines) if _keep_entry(e) for line in _clean_entry(e)] + [""]
        else:  # DESCRIPTION
            out += lines + [""]
    return _tidy(out)


def render_module(name: str) -> str:
    """Return the cleaned pydoc text of stdlib module ``name``."""
    module = _import_quietly(name)
    return clean_pydoc(pydoc.render_doc(module, renderer=pydoc.plaintext))


def split() -> tuple[list[str], list[str]]:
    """Return (train_docs, heldout_docs), each in sorted module-name order."""
    heldout = set(HELDOUT_NAMES)
    train = [render_module(n) for n in module_names() if n not in heldout]
    held = [render_module(n) for n in heldout_names()]
    return train, held


def _summary_and_body(doc: str) -> tuple[str, str] | None:
    """Split a docstring into (one-line summary, long description), if it has both."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.strip(), maxsplit=1)]
    if len(paragraphs) != 2:
        return None
    summary, body = " ".join(paragraphs[0].split()), paragraphs[1]
    # A summary is one short sentence; the body must say something more.
    if not (summary.endswith(".") and 3 <= len(summary.split()) <= 30):
        return None
    if len(body.split()) < 8 or summary.startswith(("..", ">>>")):
        return None
    return summary, body


def _documented_members(module) -> Iterator[tuple[str, object]]:
    """Public functions and classes defined in ``module``, and their methods."""
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_") and attr != "__init__":
                    continue
                member = getattr(member, "__func__", member)  # classmethod/staticmethod
                if inspect.isfunction(member) or isinstance(member, property):
                    yield f"{module.__name__}.{name}.{attr}", member


def docstring_pairs(names: Iterable[str] | None = None) -> Iterator[tuple[str, str]]:
    """Yield (long description, one-line summary) pairs from docstrings.

    ``names`` defaults to the training modules (held-out modules excluded, so a
    summariser can be scored on :data:`HELDOUT_NAMES`). Order is deterministic:
    module name, then member name; a repeated description is yielded once.
    """
    if names is None:
        names = [n for n in module_names() if n not in HELDOUT_NAMES]
    seen: set[str] = set()
    for module_name in names:
        module = _import_quietly(module_name)
        for _qualname, obj in _documented_members(module):
            doc = obj.__doc__ if isinstance(obj, property) else inspect.getdoc(obj)
            pair = _summary_and_body(inspect.cleandoc(doc)) if doc else None
            if pair is None or pair[1] in seen:
                continue
            seen.add(pair[1])
            yield pair[1], pair[0]


# Every other public stdlib module, for the scripts that want more docstrings than the corpus's.
_DENY = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3",
    "distutils", "encodings", "ensurepip", "pydoc_data", "curses", "msilib", "winreg",
    "winsound", "msvcrt", "nt", "crypt", "nis", "spwd", "ossaudiodev", "audioop", "sndhdr",
    "imghdr", "chunk", "cgi", "cgitb", "telnetlib", "asyncore", "asynchat", "smtpd", "imp",
    "nntplib", "pipes", "uu", "xdrlib", "mailcap", "sunau", "aifc", "readline", "rlcompleter",
    "sre_compile", "sre_parse", "sre_constants",
})


def extra_module_names() -> list[str]:
    """Public stdlib modules (and their public submodules) that import quietly, minus the corpus's
    held-out modules and anything in the deny list; sorted."""
    held = set(heldout_names())
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if top.startswith("_") or top in _DENY or top in held:
            continue
        try:
            module = _import_quietly(top)
        except Exception:  # platform-only or broken on this build
            continue
        names.add(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), top + "."):
            parts = info.name.split(".")
            if any(p.startswith("_") or p in ("test", "tests", "idle_test") for p in parts):
                continue
            try:
                _import_quietly(info.name)
            except Exception:
                continue
            names.add(info.name)
    return sorted(names)
