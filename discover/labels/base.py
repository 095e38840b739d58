"""Label generators: the prompt of the paper's Algorithm 1, list parsing, and the ask-for-more loop.

The shipped template (``templates/task_labels_v1.txt``) is Algorithm 1 plus two things of our
own: an output-format line closing the first request (a JSON array, nothing else) and the
follow-up request for more labels; Algorithm 1 has neither.

A backend only has to answer a chat conversation (``complete``); the base class renders the
versioned prompt template, parses whatever list format comes back, normalises and de-duplicates
the labels, and asks again for *additional* labels while fewer than ``min_labels`` were found.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discover.errors import ConfigError, LabelGenerationError

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LISTS_DIR = Path(__file__).resolve().parent / "lists"
DEFAULT_TEMPLATE = "task_labels_v1"
FOLLOW_UP_MARKER = "=== follow-up ==="

# A label is a short noun phrase; anything longer is prose the model wrapped around its list.
MAX_LABEL_WORDS = 5


# -- normalisation --------------------------------------------------------------------------

_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"
_BULLET_RE = re.compile(r"^(?:[-*+\u2022\u2023\u25e6\u2043\u2219>]+|#+)\s*")
# "1." "1)" "(1)" "[1]" "1:" "1 -" "a)"; a number must be followed by a space ("3.5 inch" stays).
_NUMBER_RE = re.compile(
    r"^(?:[(\[]?(?:\d{1,4}|[a-z])[.):\]]|\d{1,4}\s+[-\u2013])(?=\s|$)\s*", re.IGNORECASE
)
_MARKUP_RE = re.compile(r"\*\*|__|\*")
_SPACE_RE = re.compile(r"\s+")


def clean_label(text: str) -> str:
    """Lowercase, strip, collapse whitespace; drop surrounding quotes, numbering and bullets.

    Returns "" for text that holds no label (an empty bullet, a lone number).
    """
    label = unicodedata.normalize("NFKC", str(text))
    label = _MARKUP_RE.sub("", label)
    label = _SPACE_RE.sub(" ", label).strip()
    # Bullets, numbering and quotes can nest ("1. - 'cat'"), so peel until nothing changes.
    previous = None
    while label != previous:
        previous = label
        label = _BULLET_RE.sub("", label)
        label = _NUMBER_RE.sub("", label)
        label = label.strip().strip(_QUOTES).strip().rstrip(".,;:").strip()
    return label.lower()


def dedupe(labels: Iterable[str]) -> list[str]:
    """Normalised labels, empties dropped, first occurrence kept (order preserved)."""
    return list(dict.fromkeys(n for n in (clean_label(x) for x in labels) if n))


# -- parsing a model's answer ---------------------------------------------------------------

_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
# "1. car - a vehicle with four wheels": keep the name, drop the explanation.
_EXPLANATION_RE = re.compile(r"\s+(?:-|\u2013|\u2014|:)\s+.*$")


def parse_label_list(text: str) -> list[str]:
    """The labels in a model's answer, normalised and de-duplicated in order.

    Understands a JSON array (bare, inside ```json fences, or with prose around it), a JSON
    object with a ``labels`` array, numbered lists, bullet lists and comma-separated lines.
    """
    labels = _parse_json_list(text)
    if labels is None:
        labels = _parse_lines(text)
    return [x for x in dedupe(labels) if len(x.split()) <= MAX_LABEL_WORDS]


def _parse_json_list(text: str) -> list[str] | None:
    decoder = json.JSONDecoder()
    for chunk in [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]:
        # Try the chunk as a whole (an object with "labels"), then every array start in it:
        # prose around the list may itself hold brackets.
        starts = [0] + [m.start() for m in re.finditer(r"\[", chunk)]
        for start in starts:
            try:
                value, _ = decoder.raw_decode(chunk.strip() if start == 0 else chunk[start:])
            except ValueError:
                continue
            if isinstance(value, Mapping):
                value = value.get("labels")
            if isinstance(value, list) and any(isinstance(v, str | Mapping) for v in value):
                return [_json_item(v) for v in value]
    return None


def _json_item(value: Any) -> str:
    if isinstance(value, Mapping):  # [{"label": "cat"}, ...] or [{"name": "cat"}, ...]
        for key in ("label", "name", "category"):
            if key in value:
                return str(value[key])
        return ""
    return str(value) if isinstance(value, str | int | float) else ""


def _parse_lines(text: str) -> list[str]:
    lines = [ln.strip() for ln in text.replace("```", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    listed = [ln for ln in lines if _BULLET_RE.match(ln) or _NUMBER_RE.match(ln)]
    # When the answer is a numbered or bulleted list, the unmarked lines are prose around it.
    if listed:
        lines = listed
    labels: list[str] = []
    for line in lines:
        if _MARKUP_RE.sub("", line).rstrip().endswith(":"):
            continue  # a heading such as "**Vehicles:**" or "Here are the labels:"
        item = clean_label(line)
        _, colon, rest = item.partition(": ")
        if colon and "," in rest:
            item = rest  # "vehicles: car, bus, truck" lists the labels after the heading
        if "," in item or ";" in item:
            labels.extend(re.split(r"[,;]", item))
        else:
            labels.append(_EXPLANATION_RE.sub("", item))
    return labels


# -- prompt template ------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt: the first request and the follow-up asking for more labels."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return template_hash(self.text)

    @property
    def _parts(self) -> tuple[str, str]:
        first, marker, follow_up = self.text.partition(FOLLOW_UP_MARKER)
        if not marker:
            raise ConfigError(f"prompt template {self.name!r} has no {FOLLOW_UP_MARKER!r} line")
        return first.strip(), follow_up.strip()

    def render(self, task: str, description: str, min_labels: int) -> str:
        """The first request: Algorithm 1 with the task, its description and the minimum (the
        paper's 100), then the template's output-format line (ours)."""
        # The template ends step 6 with a full stop of its own.
        description = description.strip().rstrip(".")
        return string.Template(self._parts[0]).substitute(
            task=task, description=description, min_labels=min_labels
        )

    def render_follow_up(self, labels_so_far: list[str], min_labels: int) -> str:
        """The request for additional labels that are not in ``labels_so_far`` (ours: not
        part of Algorithm 1)."""
        return string.Template(self._parts[1]).substitute(
            count=len(labels_so_far),
            min_labels=min_labels,
            missing=max(1, min_labels - len(labels_so_far)),
            labels_so_far=json.dumps(labels_so_far, ensure_ascii=False),
        )


def template_hash(text: str) -> str:
    """sha256 (hex) of a prompt template's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_template(ref: str | Path | None = None) -> PromptTemplate:
    """A shipped template by name (``task_labels_v1``) or a template file by path."""
    ref = str(ref or DEFAULT_TEMPLATE)
    path = Path(ref).expanduser()
    if not path.is_file():
        path = TEMPLATES_DIR / (ref if ref.endswith(".txt") else f"{ref}.txt")
    if not path.is_file():
        shipped = sorted(p.stem for p in TEMPLATES_DIR.glob("*.txt"))
        raise ConfigError(
            f"config key semantics.labels.template: {ref!r} is neither a file nor a shipped "
            f"template (shipped: {shipped})"
        )
    return PromptTemplate(name=path.stem, text=path.read_text(encoding="utf-8"))


# -- generators -----------------------------------------------------------------------------


@dataclass
class TaskRequest:
    """What a generator is asked for: one task, its description and the label budget."""

    task: str
    description: str
    #: How the prompt names the task ("the {Task}"); the task name when empty.
    title: str = ""
    min_labels: int = 100
    max_retries: int = 2
    template: PromptTemplate = field(default_factory=load_template)


@dataclass
class LabelResult:
    """Labels plus what is needed to say how they were made."""

    labels: list[str]
    requests: int = 0
    replies: list[str] = field(default_factory=list)


class LabelGenerator:
    """Base class: subclasses set ``type_name`` (via the registry) and implement ``complete``.

    ``cfg`` is the backend's own section of ``semantics.labels`` (e.g. the ``openai`` mapping).
    """

    type_name: str = ""
    #: False for backends that read a list instead of asking a model (no prompt is involved).
    uses_prompt: bool = True

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        self.cfg = dict(cfg or {})

    @property
    def model(self) -> str:
        """What produced the labels, for provenance and the cache key."""
        return str(self.cfg.get("model", ""))

    def parameters(self) -> dict[str, Any]:
        """The settings that shaped the answer, JSON-serialisable and free of secrets."""
        return {}

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's reply to a chat conversation of ``{"role", "content"}`` messages."""
        raise NotImplementedError

    def generate(self, request: TaskRequest) -> LabelResult:
        """Ask for labels; while fewer than ``min_labels``, ask for additional ones and merge.

        Makes at most ``1 + max_retries`` requests, then raises LabelGenerationError naming the
        task and the number of labels reached.
        """
        messages = [
            {
                "role": "user",
                "content": request.template.render(
                    request.title or request.task, request.description, request.min_labels
                ),
            }
        ]
        result = LabelResult(labels=[])
        for attempt in range(request.max_retries + 1):
            reply = self.complete(messages)
            result.requests += 1
            result.replies.append(reply)
            result.labels = dedupe([*result.labels, *parse_label_list(reply)])
            if len(result.labels) >= request.min_labels:
                return result
            if attempt == request.max_retries:
                break
            follow_up = request.template.render_follow_up(result.labels, request.min_labels)
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": follow_up},
            ]
        raise LabelGenerationError(
            f"task {request.task!r}: {self.type_name} model {self.model!r} gave "
            f"{len(result.labels)} distinct labels after {result.requests} requests, fewer "
            f"than the {request.min_labels} required (raise semantics.labels.max_retries, "
            "lower min_labels, or use a stronger model)"
        )
