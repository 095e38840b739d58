"""Task labels: the candidate object labels of a machine task (the paper's §3.1.1, Algorithm 1).

One request per task, not per image: a chat model is asked, with the versioned prompt
``templates/task_labels_v1.txt``, for at least ``min_labels`` labels at the granularity the task
needs; the grounding model later keeps those present in each image. Backends are plug-ins, one
file each, registered with ``@register_label_generator``: ``static`` (a shipped or user list),
``openai`` (any OpenAI-compatible endpoint) and ``transformers`` (a local chat model).

Config (``semantics.labels`` holds the defaults; a task's ``labels`` mapping overrides them)::

    semantics:
      labels:
        backend: static | openai | transformers     # default: static
        min_labels: 100                              # fewer -> ask for more, then fail
        max_retries: 2                               # follow-up requests for more labels
        template: task_labels_v1                     # shipped template name, or a file path
        static: {path: detection.txt}                # default path: <task name>.txt
        openai:
          base_url: https://api.openai.com/v1        # any OpenAI-compatible endpoint
          model: gpt-4o
          api_key_env: OPENAI_API_KEY                # the key comes from this variable only
          image: example.jpg                         # optional example image (path or URL)
          temperature: 0
          timeout_s: 60
          max_retries_http: 4                        # backoff on 429/5xx/timeouts
        transformers: {model: <dir or hub id>, max_new_tokens: 512, device: cpu, dtype: auto}
    tasks:
      detection:
        description: "object detection on images of textured geometric shapes"
        labels: {backend: static, path: synthetic-scenes-detection.txt}   # per-task override

In a task's override, keys other than ``backend``, ``min_labels``, ``max_retries``, ``template``
and ``weights_cache`` (and whole backend sections) belong to the task's backend, so
``{backend: static, path: x.txt}`` sets ``static.path``.

The output document (``write_labels``) is JSON: ``labels`` (normalised, de-duplicated, in the
order given), ``count``, ``cache_key`` and ``provenance`` (backend, model, template name and
sha256, parameters, the raw replies, UTC timestamp). ``cache_key`` depends on the task (name and
description), the template hash, the backend and the model only, so a Snakemake rule that passes
it as a param reruns exactly when one of those changes.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import discover
from discover.errors import ConfigError
from discover.io import write_text_atomic
from discover.labels import openai_backend, static, transformers_backend  # noqa: F401
from discover.labels.base import (
    DEFAULT_TEMPLATE,
    LabelGenerationError,
    LabelGenerator,
    LabelResult,
    PromptTemplate,
    TaskRequest,
    dedupe,
    load_template,
    normalise_label,
    parse_label_list,
    template_hash,
)
from discover.labels.registry import (
    available,
    get_label_generator,
    register_label_generator,
    resolve,
)
from discover.labels.static import load_label_file

FORMAT = "discover-task-labels/1"
DEFAULTS: dict[str, Any] = {
    "backend": "static",
    "min_labels": 100,
    "max_retries": 2,
    "template": DEFAULT_TEMPLATE,
}
GENERAL_KEYS = frozenset({*DEFAULTS, "weights_cache"})

__all__ = [
    "LabelGenerationError",
    "LabelGenerator",
    "LabelResult",
    "PromptTemplate",
    "TaskRequest",
    "available",
    "cache_key",
    "dedupe",
    "generate_labels",
    "get_label_generator",
    "label_backend_config",
    "load_label_file",
    "load_template",
    "normalise_label",
    "parse_label_list",
    "read_labels",
    "register_label_generator",
    "resolve",
    "task_cache_key",
    "template_hash",
    "write_labels",
]


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


def write_labels(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write an output document atomically (a killed job leaves the old file or the new one)."""
    _check_doc(doc, path)
    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_labels(path: str | Path) -> dict[str, Any]:
    """Read an output document written by ``write_labels``; its ``labels`` is a list of str."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LabelGenerationError(f"cannot read task labels {path}: {exc}") from exc
    except ValueError as exc:
        raise LabelGenerationError(f"task labels {path} are not valid JSON: {exc}") from exc
    _check_doc(doc, path)
    return doc


def _check_doc(doc: Any, path: str | Path) -> None:
    labels = doc.get("labels") if isinstance(doc, Mapping) else None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise LabelGenerationError(f"task labels {path}: expected a document with a labels list")
