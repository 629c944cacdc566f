"""Text every Debian machine of this kind has (or gets from its own package registry), as training data.

* :func:`gettext_pairs` -- English/French message pairs of the machine's gettext catalogues
  (``/usr/share/locale/fr/LC_MESSAGES/*.mo``), one list per catalogue, so that held-out sets can be
  whole catalogues;
* :func:`debian_descriptions` -- Debian's package descriptions (``Translation-en`` and
  ``Translation-fr`` in apt's lists folder, after ``apt-get -o Acquire::Languages=en,fr update``),
  keyed by ``Description-md5``;
* :func:`description_pairs` -- French/English description pairs joined on that key, cut into
  paragraph pairs where both sides have the same number of paragraphs;
* :func:`synopsis_pairs` -- (long description, one-line synopsis) pairs for summarization,
  deduplicated by body.

Licences: the gettext catalogues are each project's own (GPL, LGPL and other free licences; the
copyright notice is in each .mo file's header); Debian's descriptions and their translations are
the packages' (DFSG-free) and the Debian Description Translation Project's, distributed by Debian.
"""

from __future__ import annotations

import gettext
import hashlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCALE_DIR = Path("/usr/share/locale")
APT_LISTS = Path("/var/lib/apt/lists")
APT_UPDATE = "apt-get -o Acquire::Languages=en,fr update"

GETTEXT_LICENCE = (
    "the English/French messages of the gettext catalogues installed on a Debian 12 machine "
    "(`/usr/share/locale/fr/LC_MESSAGES/*.mo`), each under its own project's free licence "
    "(GPL, LGPL and others; each .mo file's header names its copyright holders)"
)
DEBIAN_LICENCE = (
    "Debian 12's package descriptions (`Translation-en`) and their French translations "
    "(`Translation-fr`, the Debian Description Translation Project), fetched from Debian's archive "
    "with `apt-get -o Acquire::Languages=en,fr update`; the descriptions are part of each package, "
    "all DFSG-free, and the translations are distributed by Debian under the same terms"
)

# A message that is markup, a format string alone, a path or a keyword list rather than prose.
_NOT_PROSE_RE = re.compile(r"^[\W\d_%s]*$|<[a-z/][^>]*>|^[\w.-]+(/[\w.-]+)+$")


def _clean(text: str) -> str:
    return " ".join(text.replace("_", "" if text.count("_") == 1 else "_").split())


def gettext_pairs(language: str = "fr", max_words: int = 40) -> dict[str, list[tuple[str, str]]]:
    """{catalogue name: [(english, translation), ...]} from the machine's .mo files.

    Skips the header, plural forms, context-qualified duplicates are kept once, messages that are
    not prose (markup, bare format strings, paths) and messages longer than ``max_words`` words.
    A single "_" (a menu accelerator, as in "_Open") is removed; whitespace is collapsed.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.mo")):
        with path.open("rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 -- the documented way to list a catalogue
        pairs = set()
        for key, value in catalog.items():
            if not isinstance(key, str) or not key or not value:
                continue  # header ("") and plural forms ((msgid, n))
            english = _clean(key.split("\x04")[-1])
            translated = _clean(value)
            if not english or not translated or english == translated:
                continue
            if _NOT_PROSE_RE.search(english) or len(english.split()) > max_words or len(translated.split()) > max_words * 2:
                continue
            pairs.add((english, translated))
        if pairs:
            out[path.stem] = sorted(pairs)
    return out


@dataclass(frozen=True)
class Description:
    package: str
    md5: str
    synopsis: str
    paragraphs: tuple[str, ...]

    @property
    def body(self) -> str:
        return " ".join(self.paragraphs)


def _lists_file(language: str) -> Path:
    found = sorted(APT_LISTS.glob(f"*_debian_dists_bookworm_main_i18n_Translation-{language}*"))
    if not found:
        raise FileNotFoundError(
            f"no Translation-{language} in {APT_LISTS}: run `{APT_UPDATE}` first (as root)"
        )
    return found[0]


def _read_lists_file(path: Path) -> str:
    if path.suffix == ".lz4":
        return subprocess.run(["lz4cat", str(path)], check=True, capture_output=True).stdout.decode("utf-8")
    return path.read_text(encoding="utf-8")


def _records(text: str) -> Iterator[dict[str, list[str]]]:
    for block in text.split("\n\n"):
        record: dict[str, list[str]] = {}
        field = None
        for line in block.splitlines():
            if line.startswith(" ") and field:
                record[field].append(line[1:])
            elif ":" in line:
                field, value = line.split(":", 1)
                record[field] = [value.strip()]
        if record:
            yield record


def debian_descriptions(language: str = "en") -> dict[str, Description]:
    """{Description-md5: Description} of Debian 12 main's ``Translation-<language>``."""
    out: dict[str, Description] = {}
    for record in _records(_read_lists_file(_lists_file(language))):
        lines = record.get(f"Description-{language}")
        if not lines or "Description-md5" not in record:
            continue
        paragraphs, current = [], []
        for line in lines[1:]:
            if line.strip() == ".":
                paragraphs.append(current)
                current = []
            elif not line.startswith(" "):  # lines starting with two spaces are verbatim (lists, code)
                current.append(line.strip())
            else:
                current.append(line.strip())
        paragraphs.append(current)
        texts = tuple(" ".join(" ".join(p).split()) for p in paragraphs if p)
        md5 = record["Description-md5"][0]
        out[md5] = Description(record.get("Package", [""])[0], md5, lines[0].strip(), texts)
    return out


_GROUP_SUFFIX_RE = re.compile(r"(-(dev|doc|data|common|bin|utils|tools|dbg|examples|plugins?|l10n|locales?|fonts?))+$")


def package_group(package: str) -> str:
    """A package's family: the name without -dev/-doc/... suffixes and trailing version digits."""
    return re.sub(r"[\d.+-]+$", "", _GROUP_SUFFIX_RE.sub("", package)) or package


def held_out(key: str, percent: int) -> bool:
    """A stable split by name: the same key always lands on the same side, on every machine."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < percent


def description_pairs(max_words: int = 80) -> list[tuple[str, str, str]]:
    """(package, french, english) paragraph pairs and synopsis pairs of the translated descriptions."""
    english = debian_descriptions("en")
    pairs = []
    for md5, fr in debian_descriptions("fr").items():
        en = english.get(md5)
        if en is None:
            continue
        pairs.append((fr.package, fr.synopsis, en.synopsis))
        if len(fr.paragraphs) == len(en.paragraphs):
            for f, e in zip(fr.paragraphs, en.paragraphs):
                if 0 < len(e.split()) <= max_words and 0 < len(f.split()) <= max_words * 1.5:
                    pairs.append((fr.package, f, e))
    return pairs


def synopsis_pairs(min_words: int = 30) -> list[tuple[str, str, str]]:
    """(package, long description, synopsis), one per distinct body of ``min_words`` words or more.

    Many packages share a body (a library and its -dev and -doc packages); the first package in
    the file keeps it, so that a body never lands on both sides of a split by package.
    """
    seen: set[str] = set()
    out = []
    for desc in debian_descriptions("en").values():
        body = desc.body
        key = body.lower()
        if len(body.split()) < min_words or key in seen or not desc.synopsis:
            continue
        seen.add(key)
        out.append((desc.package, body, desc.synopsis))
    return out
