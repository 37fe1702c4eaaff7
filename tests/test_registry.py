"""The generic registry and the shared helpers: hashing, package versions, atomic folders, metric table."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap

import pytest

from regurg_bench.atomic import atomic_folder
from regurg_bench.hashing import config_hash, file_sha256, parts_sha256
from regurg_bench.metric_table import (
    METRICS,
    SACREBLEU_METRICS,
    corpus_metric,
    higher_is_better,
    metric_label,
)
from regurg_bench.registry import PLUGINS_ENV, Registry, UnknownNameError
from regurg_bench.versions import package_versions


class Shape:
    name = ""


def _shapes() -> Registry[Shape]:
    shapes: Registry[Shape] = Registry("shape kind", item="shape")

    @shapes.register("square")
    class Square(Shape):
        """A square: four equal sides."""

        def __init__(self, side: float, *, colour: str = "red") -> None:
            self.side, self.colour = side, colour

    @shapes.register()
    class Circle(Shape):
        """A circle."""
        name = "circle"

        def __init__(self, radius: int = 1) -> None:
            self.radius = radius

    return shapes


def test_register_by_decorator_name_or_class_attribute():
    shapes = _shapes()
    assert shapes.names() == ["circle", "square"] and list(shapes) == ["circle", "square"] and len(shapes) == 2
    assert shapes["square"].name == "square"  # the registry name is set on the class
    assert "circle" in shapes and "triangle" not in shapes
    assert shapes.help_list() == "circle, square"
    assert shapes.describe() == [("circle", "A circle."), ("square", "A square: four equal sides.")]


def test_unknown_name_is_one_error_type_with_did_you_mean():
    shapes = _shapes()
    with pytest.raises(UnknownNameError) as info:
        shapes.get("sqare")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert str(err) == "unknown shape kind 'sqare' (did you mean 'square'?); registered: circle, square"
    assert err.name == "sqare" and err.known == ["circle", "square"]
    with pytest.raises(KeyError, match="unknown shape kind 'hexagon'; registered: circle, square"):
        shapes["hexagon"]


def test_registering_a_name_twice_is_an_error():
    shapes = _shapes()
    with pytest.raises(ValueError, match="shape kind 'square' is already registered"):
        shapes.register("square")(type("Other", (Shape,), {}))


def test_options_are_checked_against_the_typed_constructor():
    shapes = _shapes()
    assert shapes.option_problems("square", {"side": 2.5}) == []
    assert shapes.option_problems("square", {"side": 2, "colour": "blue"}) == []
    assert shapes.option_problems("square", {"side": "wide"})[0].startswith(
        "options.side: Input should be a valid number")
    assert shapes.option_problems("square", {"side": 1, "edges": 4}) == [
        "options.edges: shape 'square' does not take this option; it takes: side, colour"]
    assert shapes.option_problems("square", {}) == ["options.side: shape 'square' needs this option"]
    assert shapes.option_problems("sqare", {}) == [
        "kind: unknown shape kind 'sqare' (did you mean 'square'?); registered: circle, square"]
    built = shapes.build("square", side=3)
    assert built.side == 3 and built.colour == "red"
    with pytest.raises(ValueError, match=r"shape 'square' does not take option\(s\) \['edges'\]"):
        shapes.build("square", side=3, edges=4)
    with pytest.raises(ValueError, match=r"shape 'square' needs option\(s\) \['side'\]"):
        shapes.build("square")


def test_lazy_entries_are_imported_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "lazy_shape_mod.py").write_text(textwrap.dedent("""
        class Triangle:
            \"\"\"A triangle.\"\"\"
            def __init__(self, base: float = 1.0) -> None:
                self.base = base
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    shapes = _shapes()
    shapes.add_lazy("triangle", "lazy_shape_mod:Triangle")
    assert "lazy_shape_mod" not in sys.modules
    assert "triangle" in shapes and shapes.names() == ["circle", "square", "triangle"]
    assert "lazy_shape_mod" not in sys.modules  # listing does not import
    assert shapes.build("triangle", base=2.0).base == 2.0
    assert "lazy_shape_mod" in sys.modules


def test_plugin_modules_from_the_environment_register_themselves(tmp_path, monkeypatch):
    (tmp_path / "shape_plugin_mod.py").write_text(textwrap.dedent("""
        from tests_shape_registry import SHAPES

        @SHAPES.register("star")
        class Star:
            def __init__(self) -> None:
                pass
    """))
    (tmp_path / "tests_shape_registry.py").write_text(
        "from regurg_bench.registry import Registry\nSHAPES = Registry('shape kind')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(PLUGINS_ENV, "shape_plugin_mod")
    from tests_shape_registry import SHAPES

    assert SHAPES.names() == ["star"]
    monkeypatch.setenv(PLUGINS_ENV, "no_such_plugin_module_xyz")
    with pytest.raises(ImportError, match=f"{PLUGINS_ENV}: cannot import plug-in module 'no_such_plugin_module_xyz'"):
        SHAPES.names()


def test_production_registries_are_registries():
    from regurg_bench.corpora.registry import CORPUS_SOURCES
    from regurg_bench.diagnostics.base import DIAGNOSTICS
    from regurg_bench.generation.base import GENERATORS

    assert {"bible", "tsv", "jsonl", "moses", "hf"} <= set(CORPUS_SOURCES.names())
    assert {"apertium", "openai", "teacher", "transformers", "vllm"} <= set(GENERATORS.names())
    assert {"reference", "diversity", "similarity"} <= set(DIAGNOSTICS.names())
    for registry in (CORPUS_SOURCES, GENERATORS, DIAGNOSTICS):
        assert isinstance(registry, Registry)
        with pytest.raises(UnknownNameError):
            registry.get("no-such-name")


# -- hashing: frozen formats (these digests name cached results and published entries) ------------
def test_config_hash_is_compact_sorted_json():
    value = {"b": [1, 2], "a": {"y": "é", "x": None}}
    canonical = '{"a":{"x":null,"y":"\\u00e9"},"b":[1,2]}'
    assert config_hash(value) == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


def test_parts_sha256_separates_parts():
    assert parts_sha256("ab", "c") != parts_sha256("a", "bc")
    expected = hashlib.sha256(b'"a"\x00{"k": 1}\x00').hexdigest()
    assert parts_sha256("a", {"k": 1}) == expected


def test_file_sha256(tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_package_versions():
    import pytest as installed

    got = package_versions("pytest", "no-such-dist-xyz")
    assert got == {"pytest": installed.__version__}
    assert package_versions("no-such-dist-xyz", missing="absent") == {"no-such-dist-xyz": "absent"}


# -- atomic folders ------------------------------------------------------------------------------
def test_atomic_folder_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and tmp.name.endswith(".part")
        (tmp / "a.json").write_text("{}")
        assert not target.exists()
    assert json.loads((target / "a.json").read_text()) == {}
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "b.json").write_text("{}")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no leftover, old target kept
    assert [p.name for p in target.iterdir()] == ["a.json"]
    with atomic_folder(target, fsync=True) as tmp:  # replaces an existing target
        (tmp / "c.json").write_text("{}")
    assert [p.name for p in target.iterdir()] == ["c.json"]
    with pytest.raises(FileExistsError), atomic_folder(target, replace=False):
        pass


# -- metric table --------------------------------------------------------------------------------
def test_metric_table_directions_and_sacrebleu_objects():
    assert SACREBLEU_METRICS == ("bleu", "chrf", "chrf++", "ter")
    assert [m for m in METRICS if not higher_is_better(m)] == ["ter"]
    assert metric_label("chrf") == "chrF" and metric_label("ter") == "TER"
    assert corpus_metric("chrf++").word_order == 2 and corpus_metric("chrf").word_order == 0
    assert type(corpus_metric("ter")).__name__ == "TER"
    with pytest.raises(KeyError, match="unknown metric 'meteor'"):
        higher_is_better("meteor")


# -- CLI help lists come from the registries -----------------------------------------------------
def _help(register, name: str) -> str:
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `name` a sub-command
    return CliRunner().invoke(app, [name, "--help"], terminal_width=400).output


def test_cli_help_lists_are_generated_from_the_registries(monkeypatch):
    from regurg_bench.diagnostics import DIAGNOSTICS
    from regurg_bench.diagnostics import commands as diagnose_commands
    from regurg_bench.generation import commands as generate_commands
    from regurg_bench.generation.base import GENERATORS

    # a kind registered at run time shows up: nothing in the help is typed by hand
    monkeypatch.setitem(GENERATORS._classes, "zz-probe-generator", type(GENERATORS["apertium"]))
    monkeypatch.setitem(DIAGNOSTICS._classes, "zz_probe_diagnostic", DIAGNOSTICS["copy"])
    gen_help = " ".join(_help(generate_commands.register, "generate").split())
    assert "zz-probe-generator" in gen_help and "scripted" in gen_help  # the test plug-in, too
    assert all(kind in gen_help for kind in GENERATORS.names())
    diag_help = " ".join(_help(diagnose_commands.register, "diagnose").split())
    assert "zz_probe_diagnostic" in diag_help and all(name in diag_help for name in DIAGNOSTICS.names())


def test_scripted_generator_is_not_in_the_production_registry():
    """Without the plug-in variable (as users run it) the test double is not registered."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    code = ("from regurg_bench.generation.base import GENERATORS; import regurg_bench.cli; "
            "print(','.join(GENERATORS.names()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() and "scripted" not in out.strip().split(","), out
