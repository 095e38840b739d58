"""Loading and validating config.yaml against schemas/config.schema.yaml."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from discover.codecs import registry
from discover.codecs.command import check_templates
from discover.datasets.base import PROTOCOLS
from discover.datasets.photos import DEFAULT_PHOTOS
from discover.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _dotted(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        extra = re.findall(r"'([^']+)'", error.message)
        allowed = sorted((error.schema.get("properties") or {}).keys())
        keys = ", ".join(f"{where}.{k}" if where != "<root>" else k for k in extra)
        hint = f" (allowed keys here: {', '.join(allowed)})" if allowed else ""
        return f"config key {keys}: unknown key{hint}"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"config key {where}: expected {expected}, got {error.instance!r}"
    if error.validator == "required":
        return f"config key {where}: {error.message}"
    if error.validator == "enum":
        return f"config key {where}: {error.instance!r} is not one of {error.validator_value}"
    return f"config key {where}: {error.message}"


def fill_defaults(instance: Any, schema: Mapping) -> None:
    """Fill ``default`` values of plain ``properties`` (recursively, not inside if/then)."""
    if not isinstance(instance, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub)


def validate_config(config: Mapping, schema: Mapping | None = None) -> dict:
    """Validate ``config``; return a copy with defaults filled in.

    Raises ConfigError naming the dotted key at fault and what was expected.
    """
    schema = schema or load_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), str(e.path)))
    if errors:
        # The deepest specific error (not the if/then wrapper) is the one a user can act on.
        best = jsonschema.exceptions.best_match(errors)
        leaves = [e for e in best.context] if best.context else []
        error = jsonschema.exceptions.best_match(leaves) if leaves else best
        raise ConfigError(_describe(error))
    config = copy.deepcopy(dict(config))
    fill_defaults(config, schema)
    _check_references(config)
    return config


def _check_references(config: Mapping) -> None:
    anchor = config.get("anchor")
    if anchor is not None and anchor not in config["codecs"]:
        raise ConfigError(
            f"config key anchor: {anchor!r} is not a configured codec "
            f"(codecs: {', '.join(config['codecs'])})"
        )
    anchor_name = anchor or next(iter(config["codecs"]))
    for name, entry in config["codecs"].items():
        wanted = entry.get("datasets") or []
        unknown = [d for d in wanted if d not in config["datasets"]]
        if unknown:
            raise ConfigError(
                f"config key codecs.{name}.datasets: {unknown[0]!r} is not a configured dataset "
                f"(datasets: {', '.join(config['datasets'])})"
            )
        missing = [d for d in config["datasets"] if wanted and d not in wanted]
        if name == anchor_name and missing:
            raise ConfigError(
                f"config key codecs.{name}.datasets: {name!r} is the BD anchor and must run on "
                f"every dataset (missing: {', '.join(missing)})"
            )
    base = (config.get("ablation") or {}).get("base")
    if base is not None and base not in config["codecs"]:
        raise ConfigError(
            f"config key ablation.base: {base!r} is not a configured codec "
            f"(codecs: {', '.join(config['codecs'])})"
        )

    known = set(PROTOCOLS) | set(config.get("protocols", {}))
    for name, entry in config["datasets"].items():
        proto = entry.get("protocol")
        if proto is not None and proto not in known:
            raise ConfigError(
                f"config key datasets.{name}.protocol: unknown protocol {proto!r} "
                f"(known: {', '.join(sorted(known))})"
            )

    for name, entry in config["codecs"].items():
        if entry["type"] not in registry.available() and ":" not in entry["type"]:
            raise ConfigError(
                f"config key codecs.{name}.type: unknown codec type {entry['type']!r} "
                f"(registered: {', '.join(sorted(registry.available()))}; a plugin is "
                "'module:Class' or a 'discover.codecs' entry point)"
            )
        if entry["type"] == "command":
            check_templates(name, entry)
    _check_cross_references(config)


def _entries(config: Mapping, *sections: str) -> str:
    """The entries of config sections, for an error message: "task_training: a, b"."""
    return "; ".join(f"{s}: {', '.join(config.get(s) or {}) or 'none'}" for s in sections)


def _check_known(config: Mapping, key: str, name: Any, *sections: str) -> None:
    """``name`` (the value of config key ``key``) must be an entry of one of ``sections``."""
    if not any(name in (config.get(s) or {}) for s in sections):
        kinds = " or ".join(sections)
        raise ConfigError(
            f"config key {key}: {name!r} is not a {kinds} entry ({_entries(config, *sections)})"
        )


def _check_cross_references(config: Mapping) -> None:
    """Names of trained models, tasks and datasets that other keys refer to must exist: these
    are read while the DAG is built (input functions), too late for a clear error."""
    datasets = config["datasets"]
    for name, entry in config["codecs"].items():
        if "trained" in entry and entry["type"] == "compressai":
            _check_known(config, f"codecs.{name}.trained", entry["trained"], "zoo_training")
        if "trained" in entry and entry["type"] == "discover":
            _check_known(
                config,
                f"codecs.{name}.trained",
                entry["trained"],
                "discover_training",
                "composition_training",
            )
        if entry["type"] == "discover" and entry.get("consumers"):
            tasks = [str(t) for t in entry.get("tasks") or {}]
            for consumer in entry["consumers"]:
                if consumer != "human" and consumer not in tasks:
                    raise ConfigError(
                        f"config key codecs.{name}.consumers: {consumer!r} is neither 'human' "
                        f"nor one of the codec's tasks (codecs.{name}.tasks: "
                        f"{', '.join(tasks) or 'none'})"
                    )
    for task, entry in (config.get("tasks") or {}).items():
        if entry.get("trained") is not None:
            _check_known(config, f"tasks.{task}.trained", entry["trained"], "task_training")
        for dataset in entry.get("datasets") or []:
            if dataset not in datasets:
                raise ConfigError(
                    f"config key tasks.{task}.datasets: {dataset!r} is not a configured dataset "
                    f"(datasets: {', '.join(datasets)})"
                )
    for model, spec in (config.get("task_training") or {}).items():
        init = spec.get("init")
        if init == model:
            raise ConfigError(
                f"config key task_training.{model}.init: a model cannot start from itself"
            )
        if init is not None:
            _check_known(config, f"task_training.{model}.init", init, "task_training")
    grounding = grounding_config(config)
    if grounding["backend"] == "detector":
        detector = grounding.get("detector") or {}
        if detector.get("trained") is not None:
            key = "semantics.grounding.detector.trained"
            _check_known(config, key, detector["trained"], "task_training")
        elif not detector.get("checkpoint"):
            trained = _entries(config, "task_training")
            raise ConfigError(
                "config key semantics.grounding.detector: the detector backend needs a "
                f"checkpoint (or trained: <task_training entry>; {trained})"
            )
    _check_photo_leak(config)
    for dataset in (config.get("visual_grid") or {}).get("datasets") or []:
        if dataset not in datasets:
            raise ConfigError(
                f"config key visual_grid.datasets: {dataset!r} is not a configured dataset "
                f"(datasets: {', '.join(datasets)})"
            )


#: scikit-image samples that are one photograph under two names
SAME_PHOTO = {"cat": "chelsea"}


def _check_photo_leak(config: Mapping) -> None:
    """A bundled photograph both trained on and evaluated would flatter every trained codec."""
    evaluated = {
        SAME_PHOTO.get(str(photo), str(photo)): name
        for name, entry in config["datasets"].items()
        if entry["type"] == "photos"
        for photo in list(entry.get("names") or DEFAULT_PHOTOS)[: entry.get("max_images") or None]
    }
    for pool, entry in (config.get("training_data") or {}).items():
        for index, src in enumerate(entry.get("sources") or []):
            if src.get("type") != "photos":
                continue
            for photo in src.get("names") or []:
                dataset = evaluated.get(SAME_PHOTO.get(photo, photo))
                if dataset is not None:
                    raise ConfigError(
                        f"config key training_data.{pool}.sources[{index}].names: {photo!r} is "
                        f"also evaluated (datasets.{dataset}); train on other photos"
                    )


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level")
    return validate_config(raw)


# -- readers of config sections (defaults the schema cannot express) ------------------------
def grounding_config(config: Mapping[str, Any]) -> dict:
    """``semantics.grounding`` with its backend and latent stride filled in."""
    cfg = {"backend": "grounding-dino", "stride": 16}
    cfg.update((config.get("semantics") or {}).get("grounding") or {})
    return cfg


def needs_annotations(config: Mapping[str, Any]) -> bool:
    """The oracle backend reads the dataset's annotations (datasets without them get none)."""
    return grounding_config(config)["backend"] == "gt"
