"""One registry for the pluggable kinds of the package (codecs, datasets, tasks, grounders,
label generators): classes register under a name; a name that is not registered may be an
installed package's entry point (where the kind has an entry-point group) or a 'module:Class'
plugin string. The built-in implementations are imported when the registry is first asked, so
that importing a registry (or the package that holds it) stays cheap; a registry given its
built-ins by name imports only the module of the name asked for (listing the names imports
nothing), so that planning a run with a classic codec never imports torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from discover.errors import ConfigError, DiscoverError

T = TypeVar("T")


class Registry(Generic[T]):
    """Subclasses of ``base`` by name.

    ``kind`` names a plugin in error messages ("codec" gives "codec plugin 'x' cannot be
    imported"); ``base_name`` is what a plugin must be ("... is not a discover.codecs.Codec
    subclass"); ``unknown`` is the message of a name that is neither registered nor a plugin,
    a template with ``{name!r}`` and ``{registered}`` (the sorted available names) that says
    which config key the name came from. ``error`` is raised for a plugin that cannot be
    imported or is not a subclass, ``unknown_error`` for an unknown name. ``attribute`` is the
    class attribute :meth:`register` sets to the name; ``group`` the entry-point group of
    installed plugins (``None``: no entry points); ``builtins`` the modules (full names) that
    register the built-in classes, imported on first use, or a mapping name -> the module that
    registers it, imported when that name is first asked for."""

    def __init__(
        self,
        base: type[T],
        *,
        kind: str,
        base_name: str,
        unknown: str,
        error: type[DiscoverError],
        unknown_error: type[DiscoverError] = ConfigError,
        attribute: str = "type_name",
        group: str | None = None,
        builtins: Iterable[str] | Mapping[str, str] = (),
    ) -> None:
        self.base = base
        self.kind = kind
        self.base_name = base_name
        self.unknown = unknown
        self.error = error
        self.unknown_error = unknown_error
        self.attribute = attribute
        self.group = group
        self.lazy: dict[str, str] = dict(builtins) if isinstance(builtins, Mapping) else {}
        self.builtins = tuple(dict.fromkeys(self.lazy.values())) if self.lazy else tuple(builtins)
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make ``cls`` available as ``name`` (and set its ``attribute``)."""

        def deco(cls: type[T]) -> type[T]:
            setattr(cls, self.attribute, name)
            self._classes[name] = cls
            return cls

        return deco

    def load_builtins(self) -> None:
        """Import the modules of the built-in classes (once; each registers its classes)."""
        if self._loaded:
            return
        for module in self.builtins:
            importlib.import_module(module)
        self._loaded = True

    def _load(self, name: str) -> None:
        """Import what registers ``name``: its own module where the built-ins are by name."""
        if name in self._classes:
            return
        if name in self.lazy:
            importlib.import_module(self.lazy[name])
            if name not in self._classes:
                raise self.error(
                    f"{self.kind} {name!r}: module {self.lazy[name]} does not register it"
                )
        elif not self.lazy:
            self.load_builtins()

    def entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The installed packages' entry points of this registry's group, by name."""
        if self.group is None:
            return {}
        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def get(self, name: str) -> type[T] | None:
        """The class registered as ``name``, ``None`` if none is (plugins are not looked at)."""
        self._load(name)
        return self._classes.get(name)

    def available(self) -> list[str]:
        """The registered names and those of the installed entry points, sorted."""
        if not self.lazy:
            self.load_builtins()
        return sorted(set(self._classes) | set(self.lazy) | set(self.entry_points()))

    def resolve(self, name: str) -> type[T]:
        """The class of ``name``: registered, else an entry point, else a 'module:Class'."""
        self._load(name)
        if name in self._classes:
            return self._classes[name]
        eps = self.entry_points()
        if name in eps:
            cls: Any = eps[name].load()
        elif ":" in name:
            module, _, attr = name.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise self.error(f"{self.kind} plugin {name!r} cannot be imported: {exc}") from exc
        else:
            raise self.unknown_error(self.unknown.format(name=name, registered=self.available()))
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise self.error(f"{self.kind} plugin {name!r} is not a {self.base_name}")
        return cls


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module-level ``__getattr__`` giving each name of ``exports`` (name -> the
    module defining it) from that module, imported on first use: importing the package, or a
    light module of it, then loads no heavy dependency (torch) that the others need."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
