"""The ``composition`` section of a DISCOVER codec's config, read without torch (the plan and
the CLI read it; :mod:`discover.composition.pipeline` samples with it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discover.discover_codec.consumers import HUMAN, MACHINE, VIEWERS
from discover.errors import DiscoverError

#: Paper §4.1.1: 8 sampling steps for machine vision, 50 for human perception.
DEFAULT_STEPS = {MACHINE: 8, HUMAN: 50}
#: Where sampling starts: z_T ~ N(0, I) ("noise", the paper's "initial noise"), or
#: z_T ~ q(z_T | ẑ_c), ẑ_c diffused to the first sampled step ("condition").
STARTS = ("noise", "condition")


@dataclass(frozen=True)
class CompositionSettings:
    """The codec config's ``composition`` section.

    ``prior``: an SD-layout directory or a Hub id in the weights cache
    (``stabilityai/stable-diffusion-2-1-base``); ``control``: a directory holding one control
    module per rate point, ``r<rate>/`` (saved with ``save_pretrained``).
    """

    prior: str
    control: str | None = None
    steps: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STEPS))
    prompt: str = ""
    seed: int = 0
    guidance_scale: float = 1.0
    conditioning_scale: float = 1.0
    start: str = "noise"
    fp16: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CompositionSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DiscoverError(f"composition: unknown keys {unknown} (known: {sorted(known)})")
        d = dict(d)
        if "steps" in d:
            d["steps"] = {**DEFAULT_STEPS, **{str(k): int(v) for k, v in d["steps"].items()}}
        if d.get("start", "noise") not in STARTS:
            raise DiscoverError(f"composition: start {d['start']!r} is not one of {list(STARTS)}")
        return cls(**d)

    def steps_for(self, viewer: str) -> int:
        """Sampling steps of the decode a viewer (``human`` or ``machine``) looks at, whichever
        stream it was given."""
        if viewer not in VIEWERS:
            raise DiscoverError(f"composition: viewer {viewer!r} is not one of {list(VIEWERS)}")
        return int(self.steps[viewer])

    def control_dir(self, rate: str | int | float) -> Path | None:
        return None if self.control is None else Path(self.control) / f"r{rate}"
