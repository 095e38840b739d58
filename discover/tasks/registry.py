"""Task registry: task types register by name; plugins come from 'module:Class' strings."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError
from discover.tasks.base import Task, TaskError

_TASKS: dict[str, type[Task]] = {}


def register_task(name: str):
    """Class decorator: make a :class:`Task` subclass available as task type ``name``."""

    def deco(cls: type[Task]) -> type[Task]:
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    import discover.tasks  # noqa: F401  (registers the built-in tasks)


def available() -> list[str]:
    """Names of the registered task types."""
    _load_builtins()
    return sorted(_TASKS)


def resolve(name: str) -> type[Task]:
    """The class of task type ``name`` (a registered name or a 'module:Class' plugin)."""
    _load_builtins()
    if name in _TASKS:
        return _TASKS[name]
    if ":" not in name:
        raise ConfigError(f"unknown task type {name!r} (registered: {available()})")
    module, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise TaskError(f"task plugin {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskError(f"task plugin {name!r} is not a discover.tasks.Task")
    return cls


def task_type(name: str, cfg: Mapping[str, Any]) -> str:
    """A task's type: its ``type`` key, else its name when that is a registered type."""
    kind = cfg.get("type", name)
    if not isinstance(kind, str):
        raise ConfigError(f"config key tasks.{name}.type must be a task type, got {kind!r}")
    if kind not in available() and ":" not in kind:
        raise ConfigError(
            f"config key tasks.{name}.type: unknown task type {kind!r} (registered: {available()})"
        )
    return kind


def get_task(
    name: str,
    config: Mapping[str, Any],
    weights_cache: str | os.PathLike | None = None,
    model: Any = None,
) -> Task:
    """The task ``name`` of a config (its ``tasks.<name>`` section), model loaded."""
    tasks = config.get("tasks") or {}
    if name not in tasks:
        raise ConfigError(f"config key tasks.{name}: not defined (defined: {sorted(tasks)})")
    cfg = dict(tasks[name] or {})
    cls = resolve(task_type(name, cfg))
    cache = weights_cache if weights_cache is not None else config.get("weights_cache")
    return cls(cfg, task_name=name, weights_cache=cache, model=model)
