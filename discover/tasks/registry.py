"""Task registry: task types register by name; plugins come from 'module:Class' strings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError, TaskError
from discover.registry import Registry
from discover.tasks.base import Task

TASKS: Registry[Task] = Registry(
    Task,
    kind="task",
    base_name="discover.tasks.Task",
    unknown="unknown task type {name!r} (registered: {registered})",
    error=TaskError,
    attribute="name",
    # task type -> the module that registers it, imported when the type is first asked for
    builtins={
        "classification": "discover.tasks.classification",
        "detection": "discover.tasks.detection",
        "instance_segmentation": "discover.tasks.instance_segmentation",
    },
)


def register_task(name: str):
    """Class decorator: make a :class:`Task` subclass available as task type ``name``."""
    return TASKS.register(name)


def available() -> list[str]:
    """Names of the registered task types."""
    return TASKS.available()


def resolve(name: str) -> type[Task]:
    """The class of task type ``name`` (a registered name or a 'module:Class' plugin)."""
    return TASKS.resolve(name)


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
    """The task ``name`` of a config (its ``tasks.<name>`` section) with its model: ``model``
    if given (a model in memory), else the one ``tasks.<name>.weights`` names, loaded here."""
    tasks = config.get("tasks") or {}
    if name not in tasks:
        raise ConfigError(f"config key tasks.{name}: not defined (defined: {sorted(tasks)})")
    cfg = dict(tasks[name] or {})
    cls = resolve(task_type(name, cfg))
    if model is None:
        # the models load PyTorch; the plan reads task types from this registry without it
        from discover.tasks.models import load_task_model

        checked = cls.checked_config(cfg, name)
        if not checked.get("weights"):
            raise ConfigError(
                f"config key tasks.{name}.weights: a checkpoint path or a "
                "torchvision weights name (e.g. FasterRCNN_ResNet50_FPN_Weights.COCO_V1); "
                "with backend mmdet, an mmdet checkpoint"
            )
        model = load_task_model(
            cls.name,
            str(checked["weights"]),
            architecture=checked.get("architecture"),
            weights_cache=weights_cache
            if weights_cache is not None
            else config.get("weights_cache"),
            device=str(checked.get("device", "cpu")),
            backend=str(checked.get("backend") or "torchvision"),
            config=checked.get("config"),
            task=name,
        )
    return cls(cfg, task_name=name, model=model)
