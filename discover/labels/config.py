"""What a task's label generator gets: ``semantics.labels`` merged with the task's own
``labels`` override, and what its cached labels depend on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError
from discover.labels.generate import label_backend_config, task_cache_key


def task_config(config: Mapping[str, Any], task: str) -> dict:
    tasks = config.get("tasks") or {}
    if task not in tasks:
        raise ConfigError(
            f"config key tasks.{task}: not defined (a DISCOVER codec takes its mask from the "
            "semantics stage for this task)"
        )
    return dict(tasks[task] or {})


def label_config(config: Mapping[str, Any], task: str) -> dict:
    """``semantics.labels`` merged with the task's override (what the generator gets)."""
    return label_backend_config(
        config.get("semantics") or {}, task, task_config(config, task), config.get("weights_cache")
    )


def label_cache_key(config: Mapping[str, Any], task: str) -> str:
    """What a task's labels depend on (task, description, template hash, backend, model): the
    label rule's only param, so nothing else (timeouts, retries) calls the model again."""
    return task_cache_key(task, task_config(config, task), label_config(config, task))
