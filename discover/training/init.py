"""Where stage I of a DISCOVER codec starts (``codec_init``).

* ``scratch``: fresh weights.
* ``elic``: an ELIC checkpoint in CompressAI's ``Elic2022Official`` layout (``elic_weights``: one
  file, or λ_R -> file), loaded where names and shapes match
  (:func:`discover.discover_codec.model.load_elic_state`): paper §4.1.1 "ELIC [65] serves as
  our base codec"; which ELIC weights stage I starts from, the paper does not say.
* ``base`` (composition training): the codec the pipeline trained without composition at the
  same λ_R (a file path).

The trainers record the report (which keys were loaded, newly initialised, dropped) in the
sidecar of what they write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from discover.discover_codec.model import load_codec_net, load_elic_state
from discover.discover_codec.net import CodecConfig, DiscoverCodecNet
from discover.errors import ConfigError

CODEC_INITS = ("scratch", "elic", "base")


def elic_weights(spec: Mapping[str, Any], lambda_r: float) -> str:
    """The ELIC checkpoint a rate point starts from: ``elic_weights`` as one file, or the
    entry for this λ_R of a mapping."""
    given = spec.get("elic_weights")
    if not given:
        raise ConfigError("codec_init: elic needs elic_weights (a file, or λ_R -> file)")
    if isinstance(given, Mapping):
        table = {float(k): v for k, v in given.items()}
        if float(lambda_r) not in table:
            raise ConfigError(
                f"elic_weights names no checkpoint for λ_R={lambda_r:g} (it has {sorted(table)})"
            )
        return str(table[float(lambda_r)])
    return str(given)


def initial_codec(
    cfg: CodecConfig,
    spec: Mapping[str, Any],
    lambda_r: float,
    base: str | os.PathLike | None = None,
) -> tuple[DiscoverCodecNet, dict]:
    """The codec stage I starts from, and the report the sidecar records."""
    kind = spec.get("codec_init") or ("base" if base else "scratch")
    if kind not in CODEC_INITS:
        raise ConfigError(f"codec_init: {kind!r} is not one of {list(CODEC_INITS)}")
    if kind == "base":
        if not base:
            raise ConfigError("codec_init: base needs the base model's codec")
        return load_codec_net(base, cfg).train(), {"codec_init": "base", "from": str(base)}
    net = DiscoverCodecNet(cfg)
    if kind == "scratch":
        return net, {"codec_init": "scratch"}
    path = elic_weights(spec, lambda_r)
    report = load_elic_state(net, path)
    return net, {"codec_init": "elic", "from": path, **report}
