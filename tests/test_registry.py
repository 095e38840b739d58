"""The generic registry (discover.registry) and the five registries built on it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types

import pytest

from discover.errors import (
    CodecError,
    ConfigError,
    DatasetError,
    GroundingError,
    LabelGenerationError,
    TaskError,
)
from discover.registry import Registry

from .conftest import ROOT


class Base:
    pass


class PluginError(Exception):
    pass


def make_registry(**kwargs) -> Registry:
    options = {
        "kind": "widget",
        "base_name": "tests.Base",
        "unknown": "config key things.widget: unknown widget {name!r} (registered: {registered})",
        "error": PluginError,
        **kwargs,
    }
    return Registry(Base, **options)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A module ``regplugin`` on sys.path: ``Plugin`` (a Base), ``NotPlugin``, ``function``."""
    (tmp_path / "regplugin.py").write_text(
        textwrap.dedent(
            """
            from tests.test_registry import Base

            class Plugin(Base):
                pass

            class NotPlugin:
                pass

            def function():
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("regplugin", None)


def add_entry_point(where, group: str, name: str, value: str, dist: str = "regplugin") -> None:
    """Install (by a dist-info folder under ``where``, on sys.path) an entry point."""
    info = where / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")


# -- the generic registry ---------------------------------------------------------------------


def test_register_sets_the_attribute_and_resolve_finds_the_class():
    reg = make_registry()

    @reg.register("b-widget")
    class B(Base):
        pass

    @reg.register("a-widget")
    class A(Base):
        pass

    assert A.type_name == "a-widget" and B.type_name == "b-widget"
    assert reg.resolve("a-widget") is A and reg.resolve("b-widget") is B
    assert reg.get("a-widget") is A and reg.get("c-widget") is None
    assert reg.available() == ["a-widget", "b-widget"]


def test_register_sets_the_attribute_the_registry_names():
    reg = make_registry(attribute="name")

    @reg.register("w")
    class W(Base):
        pass

    assert W.name == "w" and not hasattr(W, "type_name")


def test_unknown_name_is_an_error_naming_the_config_key_and_the_registered_names():
    reg = make_registry()
    reg.register("known")(type("Known", (Base,), {}))
    expected = "config key things.widget: unknown widget 'nope' (registered: ['known'])"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        reg.resolve("nope")
    with pytest.raises(KeyError):
        make_registry(unknown_error=KeyError).resolve("nope")


def test_module_class_plugin(plugin_dir):
    reg = make_registry()
    cls = reg.resolve("regplugin:Plugin")
    assert cls is sys.modules["regplugin"].Plugin
    # a plugin string is resolved, not registered
    assert reg.available() == []


@pytest.mark.parametrize(
    "name",
    ["regplugin:Missing", "no_such_module_for_the_registry_test:Plugin"],
)
def test_plugin_that_cannot_be_imported(plugin_dir, name):
    with pytest.raises(PluginError, match=f"widget plugin {name!r} cannot be imported: "):
        make_registry().resolve(name)


@pytest.mark.parametrize("name", ["regplugin:NotPlugin", "regplugin:function"])
def test_plugin_that_is_not_a_subclass(plugin_dir, name):
    with pytest.raises(PluginError, match=re.escape(f"widget plugin {name!r} is not a tests.Base")):
        make_registry().resolve(name)


def test_entry_point_plugin(plugin_dir):
    add_entry_point(plugin_dir, "discover.test_registry", "ep-widget", "regplugin:Plugin")
    reg = make_registry(group="discover.test_registry")
    assert reg.available() == ["ep-widget"]
    assert reg.resolve("ep-widget") is sys.modules["regplugin"].Plugin
    # a registered class wins over an entry point of the same name
    own = reg.register("ep-widget")(type("Own", (Base,), {}))
    assert reg.resolve("ep-widget") is own and reg.available() == ["ep-widget"]
    # without a group the entry point is not looked at
    with pytest.raises(ConfigError, match="unknown widget 'ep-widget'"):
        make_registry().resolve("ep-widget")


def test_entry_point_that_is_not_a_subclass(plugin_dir):
    add_entry_point(plugin_dir, "discover.test_registry", "bad", "regplugin:NotPlugin")
    with pytest.raises(PluginError, match="widget plugin 'bad' is not a tests.Base"):
        make_registry(group="discover.test_registry").resolve("bad")


def test_builtins_are_imported_on_first_use(tmp_path, monkeypatch):
    host = types.ModuleType("regbuiltin_host")
    host.REG = make_registry(builtins=["regbuiltin_one"])
    monkeypatch.setitem(sys.modules, "regbuiltin_host", host)
    (tmp_path / "regbuiltin_one.py").write_text(
        textwrap.dedent(
            """
            from regbuiltin_host import REG
            from tests.test_registry import Base

            @REG.register("built-in")
            class BuiltIn(Base):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "regbuiltin_one" not in sys.modules
        assert host.REG.available() == ["built-in"]
        assert "regbuiltin_one" in sys.modules
        assert host.REG.resolve("built-in") is sys.modules["regbuiltin_one"].BuiltIn
    finally:
        sys.modules.pop("regbuiltin_one", None)
    # get() loads them as well
    other = make_registry(builtins=["no_such_builtin_for_the_registry_test"])
    with pytest.raises(ModuleNotFoundError):
        other.get("x")
    # a built-in that failed to import is tried again, not taken as loaded
    with pytest.raises(ModuleNotFoundError):
        other.available()


# -- the five registries ----------------------------------------------------------------------


def _codecs():
    from discover.codecs import registry

    return registry


def _tasks():
    from discover.tasks import registry

    return registry


def _grounders():
    from discover.grounding import registry

    return registry


def _labels():
    from discover.labels import registry

    return registry


REGISTRIES = {
    "codecs": (
        _codecs,
        CodecError,
        "unknown codec type 'nope' (registered: ",
        "codec plugin {!r}",
        "is not a discover.codecs.Codec subclass",
    ),
    "tasks": (
        _tasks,
        TaskError,
        "unknown task type 'nope' (registered: ",
        "task plugin {!r}",
        "is not a discover.tasks.Task",
    ),
    "grounders": (
        _grounders,
        GroundingError,
        "unknown grounding backend 'nope' at semantics.grounding.backend (registered: ",
        "grounding plugin {!r}",
        "is not a discover.grounding.Grounder",
    ),
    "labels": (
        _labels,
        LabelGenerationError,
        "config key semantics.labels.backend: unknown label generator 'nope' (registered: ",
        "label generator plugin {!r}",
        "is not a discover.labels.LabelGenerator",
    ),
}


@pytest.mark.parametrize("which", sorted(REGISTRIES))
def test_the_registries_keep_their_error_messages(which):
    module, error, unknown, plugin, not_a = REGISTRIES[which]
    registry = module()
    with pytest.raises(ConfigError) as unknown_exc:
        registry.resolve("nope")
    assert str(unknown_exc.value) == unknown + f"{registry.available()})"
    with pytest.raises(error) as import_exc:
        registry.resolve("discover:NoSuchClass")
    assert str(import_exc.value).startswith(
        plugin.format("discover:NoSuchClass") + " cannot be imported: "
    )
    with pytest.raises(error) as not_a_exc:
        registry.resolve("builtins:dict")
    assert str(not_a_exc.value) == f"{plugin.format('builtins:dict')} {not_a}"


def test_the_registries_set_the_attribute_of_their_builtins():
    from discover.datasets.registry import DATASETS, available, get_dataset

    assert _codecs().resolve("jpeg").type_name == "jpeg"
    assert {"jpeg", "discover", "compressai"} <= set(_codecs().available())
    assert _tasks().resolve("detection").name == "detection"
    assert _grounders().resolve("gt").name == "gt"
    assert _labels().resolve("static").type_name == "static"
    assert DATASETS.get("coco").type_name == "coco" and "coco" in available()
    with pytest.raises(DatasetError, match=re.escape("dataset 'd': unknown type 'nope'")):
        get_dataset("d", {"datasets": {"d": {"type": "nope"}}})
    # dataset types are the registered ones only: no 'module:Class' plugin
    with pytest.raises(DatasetError, match="unknown type 'discover.datasets.base:Dataset'"):
        get_dataset("d", {"datasets": {"d": {"type": "discover.datasets.base:Dataset"}}})


@pytest.mark.parametrize(
    "group, module, value, base",
    [
        ("discover.codecs", _codecs, "regep:EPCodec", "discover.codecs.base:Codec"),
        (
            "discover.label_generators",
            _labels,
            "regep:EPLabels",
            "discover.labels.base:LabelGenerator",
        ),
    ],
)
def test_the_entry_point_groups(tmp_path, monkeypatch, group, module, value, base):
    base_module, _, base_name = base.partition(":")
    cls_name = value.partition(":")[2]
    (tmp_path / "regep.py").write_text(
        f"from {base_module} import {base_name}\n\nclass {cls_name}({base_name}):\n    pass\n"
    )
    add_entry_point(tmp_path, group, "ep-plugin", value, dist="regep")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = module()
        assert "ep-plugin" in registry.available()
        assert registry.resolve("ep-plugin") is sys.modules["regep"].__dict__[cls_name]
    finally:
        sys.modules.pop("regep", None)


def test_codec_modules_are_imported_only_when_the_registry_is_asked():
    # listing the types imports nothing; asking for one imports its module alone (a plan of
    # classic codecs never imports the learned codecs' modules, and so no torch)
    code = (
        "import sys; import discover.codecs; "
        "mods = ('discover.codecs.pillow_codecs', 'discover.codecs.compressai_models'); "
        "print(*(m in sys.modules for m in mods)); "
        "print(sorted(discover.codecs.available())); "
        "print(*(m in sys.modules for m in mods)); "
        "discover.codecs.resolve('jpeg'); "
        "print(*(m in sys.modules for m in mods), 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    lines = out.stdout.splitlines()
    assert lines[0] == lines[2] == "False False"
    assert lines[3] == "True False False"
    from discover.codecs.registry import BUILTINS, CODECS

    assert eval(lines[1]) == sorted(set(BUILTINS) | set(CODECS.entry_points()))


def test_each_lazy_registry_names_the_module_of_every_builtin():
    """The name -> module tables of the lazily loaded registries are what the modules
    register: no built-in is missing from a table or filed under another module."""
    from discover.codecs.registry import CODECS
    from discover.grounding.registry import GROUNDERS
    from discover.tasks.registry import TASKS

    for registry, package in (
        (CODECS, "discover.codecs."),
        (GROUNDERS, "discover.grounding."),
        (TASKS, "discover.tasks."),
    ):
        registry.load_builtins()
        registered = {
            name: cls.__module__
            for name, cls in registry._classes.items()
            if cls.__module__.startswith(package)
        }
        assert registered == registry.lazy, registry.kind
