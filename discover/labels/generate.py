"""Generating a task's labels: the backend config merged with the task's override, the request
a backend gets, the cache key of what the labels depend on, and the output document."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import discover
from discover.errors import ConfigError
from discover.labels.base import DEFAULT_TEMPLATE, LabelGenerator, TaskRequest, load_template
from discover.labels.document import FORMAT
from discover.labels.registry import available, get_label_generator

DEFAULTS: dict[str, Any] = {
    "backend": "static",
    "min_labels": 100,
    "max_retries": 2,
    "template": DEFAULT_TEMPLATE,
}
GENERAL_KEYS = frozenset({*DEFAULTS, "weights_cache"})


def cache_key(
    task: str, template_sha256: str, backend: str, model: str, description: str = ""
) -> str:
    """A short stable hex key of what determines a task's labels.

    ``task`` and ``description`` identify the task (both are in the prompt); ``template_sha256``
    is the prompt template's hash ("" for backends that use no prompt).
    """
    identity = json.dumps([task, description, template_sha256, backend, model])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def label_backend_config(
    semantics_cfg: Mapping[str, Any] | None,
    task_name: str,
    task_cfg: Mapping[str, Any] | None,
    weights_cache: str | None = None,
) -> dict[str, Any]:
    """``semantics.labels`` with defaults filled in and the task's ``labels`` override applied.

    ``semantics_cfg`` is the config's ``semantics`` mapping (its ``labels`` mapping is accepted
    too). ``weights_cache`` (the config's top-level key) is where the transformers backend looks
    up Hub ids.
    """
    semantics_cfg = semantics_cfg or {}
    if "labels" in semantics_cfg:
        labels_cfg = semantics_cfg["labels"] or {}
    elif GENERAL_KEYS.intersection(semantics_cfg) or set(available()).intersection(semantics_cfg):
        labels_cfg = semantics_cfg  # handed semantics.labels itself
    else:
        labels_cfg = {}
    if not isinstance(labels_cfg, Mapping):
        raise ConfigError("config key semantics.labels must be a mapping")
    merged: dict[str, Any] = {**DEFAULTS, **copy.deepcopy(dict(labels_cfg))}
    override = (task_cfg or {}).get("labels") or {}
    if not isinstance(override, Mapping):
        raise ConfigError(f"config key tasks.{task_name}.labels must be a mapping")
    backend_keys: dict[str, Any] = {}
    for key, value in override.items():
        if key in GENERAL_KEYS:
            merged[key] = value
        elif isinstance(value, Mapping) and key in available():
            merged[key] = {**(merged.get(key) or {}), **copy.deepcopy(dict(value))}
        else:
            backend_keys[key] = copy.deepcopy(value)
    if backend_keys:
        backend = merged["backend"]
        merged[backend] = {**(merged.get(backend) or {}), **backend_keys}
    if weights_cache is not None:
        merged.setdefault("weights_cache", weights_cache)
    return merged


def _backend_section(task_name: str, backend_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen backend's own settings; flat keys next to the general ones count too."""
    backend = backend_cfg.get("backend", DEFAULTS["backend"])
    section = backend_cfg.get(backend) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"config key semantics.labels.{backend} must be a mapping")
    flat = {
        k: v
        for k, v in backend_cfg.items()
        if k not in GENERAL_KEYS and not (isinstance(v, Mapping) and k in available())
    }
    out = {**flat, **section}
    if backend_cfg.get("weights_cache") is not None:
        out.setdefault("weights_cache", backend_cfg["weights_cache"])
    if backend == "static":
        out.setdefault("path", f"{task_name}.txt")
    return out


def _request(
    task_name: str,
    task_cfg: Mapping[str, Any],
    backend_cfg: Mapping[str, Any],
    gen: LabelGenerator,
) -> TaskRequest:
    description = str((task_cfg or {}).get("description") or "").strip()
    if gen.uses_prompt and not description:
        raise ConfigError(
            f"config key tasks.{task_name}.description: the {gen.type_name} label backend "
            "needs a task description for its prompt"
        )
    settings = {**DEFAULTS, **backend_cfg}
    try:
        min_labels, max_retries = int(settings["min_labels"]), int(settings["max_retries"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"semantics.labels: min_labels and max_retries must be integers ({exc})"
        ) from exc
    if min_labels < 1 or max_retries < 0:
        raise ConfigError("semantics.labels: need min_labels >= 1 and max_retries >= 0")
    # Algorithm 1 speaks of "the {Task}": "detection" reads as "the detection task".
    title = task_name.replace("_", " ").replace("-", " ")
    title = title if title.endswith("task") else f"{title} task"
    return TaskRequest(
        task=task_name,
        title=title,
        description=description,
        min_labels=min_labels,
        max_retries=max_retries,
        template=load_template(settings["template"]),
    )


def _generator(backend_cfg: Mapping[str, Any], task_name: str) -> LabelGenerator:
    backend = str(backend_cfg.get("backend", DEFAULTS["backend"]))
    return get_label_generator(backend, _backend_section(task_name, backend_cfg))


def task_cache_key(
    task_name: str, task_cfg: Mapping[str, Any], backend_cfg: Mapping[str, Any]
) -> str:
    """The ``cache_key`` that ``generate_labels`` would write, computed without generating
    (no model is loaded, no request sent, no API key needed)."""
    gen = _generator(backend_cfg, task_name)
    request = _request(task_name, task_cfg, backend_cfg, gen)
    return cache_key(
        task_name,
        request.template.sha256 if gen.uses_prompt else "",
        gen.type_name,
        gen.model,
        request.description,
    )


def generate_labels(
    task_name: str, task_cfg: Mapping[str, Any], backend_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Labels for one task, as the JSON-serialisable output document.

    ``backend_cfg`` is the merged ``semantics.labels`` mapping (see ``label_backend_config``).
    Raises LabelGenerationError when the backend fails or stays below ``min_labels``.
    """
    gen = _generator(backend_cfg, task_name)
    request = _request(task_name, task_cfg, backend_cfg, gen)
    result = gen.generate(request)
    template = request.template if gen.uses_prompt else None
    return {
        "format": FORMAT,
        "task": task_name,
        "description": request.description,
        "labels": result.labels,
        "count": len(result.labels),
        "cache_key": cache_key(
            task_name,
            template.sha256 if template else "",
            gen.type_name,
            gen.model,
            request.description,
        ),
        "provenance": {
            "backend": gen.type_name,
            "model": gen.model,
            "template": template.name if template else None,
            "template_sha256": template.sha256 if template else None,
            "parameters": {
                "min_labels": request.min_labels,
                "max_retries": request.max_retries,
                **gen.parameters(),
            },
            "requests": result.requests,
            "replies": result.replies,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "discover_version": discover.__version__,
        },
    }
