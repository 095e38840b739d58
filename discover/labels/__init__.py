"""Task labels: the candidate object labels of a machine task (the paper's §3.1.1, Algorithm 1).

One request per task, not per image: a chat model is asked, with the versioned prompt
``templates/task_labels_v1.txt``, for at least ``min_labels`` labels at the granularity the task
needs; the grounding model later keeps those present in each image. The template's first
request is Algorithm 1's six points (its "not fewer than 100" as ``min_labels``), followed by
one line of our own asking for the answer as a JSON array and nothing else; its follow-up
request (after the ``=== follow-up ===`` line), sent while fewer than ``min_labels`` distinct
labels came back, is ours too: Algorithm 1 has neither.

Backends are plug-ins, one file each, registered with ``@register_label_generator``: ``static``
(a shipped or user list), ``openai`` (any OpenAI-compatible endpoint) and ``transformers`` (a
local chat model).

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

from discover.errors import LabelGenerationError

# Importing the backends registers them with the registry.
from discover.labels import openai_backend, static, transformers_backend  # noqa: F401
from discover.labels.base import (
    LabelGenerator,
    LabelResult,
    PromptTemplate,
    TaskRequest,
    clean_label,
    dedupe,
    load_template,
    parse_label_list,
    template_hash,
)
from discover.labels.document import read_labels, write_labels
from discover.labels.generate import (
    cache_key,
    generate_labels,
    label_backend_config,
    task_cache_key,
)
from discover.labels.registry import (
    available,
    get_label_generator,
    register_label_generator,
    resolve,
)
from discover.labels.static import load_label_file

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
    "clean_label",
    "parse_label_list",
    "read_labels",
    "register_label_generator",
    "resolve",
    "task_cache_key",
    "template_hash",
    "write_labels",
]
