"""Apertium for real (Debian packages apertium, apertium-eng-spa, apertium-fr-es, apertium-spa-ita, cg3).

Skipped where Apertium is not installed, unless REGURG_BENCH_REQUIRE_APERTIUM=1 (CI sets it), which
turns the skip into a failure so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from regurg_bench.generation import ApertiumGenerator, UnsupportedDirection, build_generator
from regurg_bench.generation.apertium_backend import deformat, reformat, supported_directions

if shutil.which("apertium") is None or ("en", "es") not in supported_directions():
    if os.environ.get("REGURG_BENCH_REQUIRE_APERTIUM") == "1":
        raise RuntimeError("REGURG_BENCH_REQUIRE_APERTIUM=1 but Apertium en->es is not installed "
                           "(apt-get install apertium apertium-eng-spa apertium-fr-es apertium-spa-ita cg3)")
    pytest.skip("Apertium is not installed (apt-get install apertium apertium-eng-spa)", allow_module_level=True)


@pytest.fixture(scope="module")
def genesis() -> list[str]:
    from regurg_bench.corpora.bible import load_bible_pairs

    return [p.source for p in load_bible_pairs("en-es", "train")[:80]]


def _cli(text: str, mode: str = "eng-spa") -> str:
    """What `echo TEXT | apertium -u MODE` prints, whitespace-normalised."""
    out = subprocess.run(["apertium", "-u", mode], input=text + "\n", capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


def test_english_to_spanish_bible_verses_equal_the_apertium_command(genesis):
    verses = genesis[:6]
    results = build_generator("apertium").generate(verses, "en", "es")
    assert all(r.ok for r in results)
    assert [r.text for r in results] == [_cli(v) for v in verses]
    assert results[0].text.startswith("En el") and "tierra" in results[0].text
    assert all("  " not in r.text for r in results)  # -u leaves double spaces; we normalise
    assert results[0].n_tokens == len(results[0].text.split())


def test_each_sentence_is_translated_independently_of_its_batch(genesis):
    """Apertium's HMM tagger carries state across sentences in one stream: Genesis 3:23 comes out
    differently after Genesis 2:5 ... 3:22 than alone. A cached target must depend on its source only."""
    target = next(i for i, v in enumerate(genesis) if v.startswith("Therefore Yahweh God sent him forth"))
    gen = ApertiumGenerator()
    in_batch = gen.generate(genesis[: target + 1], "en", "es")[target].text
    alone = gen.generate([genesis[target]], "en", "es")[0].text
    assert in_batch == alone == _cli(genesis[target])


def test_special_characters_and_empty_sources_survive():
    text = 'Hello [world] ^a$ /b\\ @c <d> {e}: "quoted", 1,234.'
    assert reformat(deformat(text)) == text
    results = ApertiumGenerator().generate([text, "", "   ", "No final punctuation"], "en", "es")
    assert results[0].text == _cli(text) and "[" in results[0].text and "{e}" in results[0].text
    assert [r.status for r in results[1:3]] == ["empty", "empty"] and results[1].target is None
    assert results[3].text == "Ninguna puntuación final"


@pytest.mark.parametrize(("src", "tgt", "source", "expected"), [
    ("es", "en", "La casa es grande.", "The house is big."),
    ("fr", "es", "La maison est grande.", "La casa es grande."),
    ("es", "fr", "La casa es grande.", "La maison est grande."),
    ("es", "it", "La casa es grande.", "La casa è grande."),
    ("it", "es", "La casa è grande.", "La casa es grande."),
])
def test_other_installed_directions(src, tgt, source, expected):
    if (src, tgt) not in supported_directions():
        pytest.skip(f"Apertium {src}->{tgt} is not installed here")
    assert ApertiumGenerator().generate([source], src, tgt)[0].text == expected


def test_unsupported_direction_lists_the_supported_ones():
    gen = ApertiumGenerator()
    with pytest.raises(UnsupportedDirection) as err:
        gen.check_direction("en", "fr")
    message = str(err.value)
    assert "no en->fr pair" in message and "en->es" in message and "fr->es" in message
    with pytest.raises(UnsupportedDirection, match="Supported directions"):
        gen.generate(["Hello."], "en", "de")


def test_missing_pipeline_program_is_a_clear_error(tmp_path):
    (tmp_path / "modes").mkdir()
    (tmp_path / "modes" / "eng-spa.mode").write_text("lt-proc '/nowhere/a.bin' | cg-proc-missing-xyz '/nowhere/b.bin'\n")
    with pytest.raises(UnsupportedDirection, match="cg-proc-missing-xyz"):
        ApertiumGenerator(datadir=str(tmp_path)).check_direction("en", "es")


def test_signature_follows_the_installed_data():
    sig = ApertiumGenerator().signature()
    assert sig.kind == "apertium" and sig.revision.startswith("sha256:")
    assert sig.options == {"mark_unknown": False, "isolate_sentences": True, "normalize_whitespace": True,
                           "format": "txt"}
    assert "eng-spa" in sig.info["modes"]
    assert sig.hash == ApertiumGenerator(workers=1).signature().hash
    assert sig.hash != ApertiumGenerator(mark_unknown=True).signature().hash


def test_round_trip_is_the_composition_of_its_legs_and_has_its_own_signature(genesis):
    plain = build_generator("apertium")
    round_trip = build_generator("apertium", round_trip="it")
    verses = genesis[:20] + [""]
    direct = [r.text for r in plain.generate(verses[:-1], "en", "es")]
    via_it = [r.text for r in plain.generate(direct, "es", "it")]
    expected = [r.text for r in plain.generate(via_it, "it", "es")]
    got = round_trip.generate(verses, "en", "es")
    assert [r.text for r in got[:-1]] == expected
    assert got[-1].status == "empty"
    assert sum(a != b for a, b in zip(direct, expected, strict=True)) >= 10  # a different generator, mostly
    assert round_trip.signature().hash != plain.signature().hash
    assert round_trip.signature().options["round_trip"] == "it"


def test_round_trip_pivot_must_be_a_third_language():
    with pytest.raises(UnsupportedDirection, match="pivot 'es' must differ"):
        build_generator("apertium", round_trip="es").check_direction("en", "es")
    with pytest.raises(UnsupportedDirection, match="no es->de pair"):
        build_generator("apertium", round_trip="de").check_direction("en", "es")
