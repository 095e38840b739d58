"""DISCOVER as a codec of the benchmark: one ``.dsc`` per image, decoded once per consumer.

Config (``type: discover``): ``trained: <discover_training entry>`` (the embedded mini models under
weights/<name>/) or ``architecture: full`` with ``weights: {rate: file}`` and ``vae`` (a local
``from_pretrained`` directory or a Hub id through the weights cache). ``tasks`` maps a task name to
its mask source: ``gt`` (the dataset's annotated boxes) or ``none`` (nothing transmitted for the
task) or ``grounding`` (the default: the boxes the semantics stage grounded for the task's labels,
discover.stages.semantics); ``consumers`` picks which decodings the tables show (``human`` = all of
ŷ). Without ``composition`` a consumer's image is the VAE decoder on ẑ_c ("DISCOVER w/o
composition"); with ``composition: {prior, control, steps: {machine, human}, prompt, seed}`` ẑ_c
conditions the diffusion prior through the control module of the rate point (``control/r<λ_R>/``),
with ``steps.machine`` DDIM steps for the decode a task model looks at and ``steps.human`` for the
one the human metrics look at, whichever stream was received (discover.composition). Each
stream is decoded once per viewer whose decodes differ (:meth:`DiscoverCodec.decode_views`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.composition.settings import CompositionSettings
from discover.discover_codec.bitstream import Container
from discover.discover_codec.consumers import HUMAN, MACHINE, VIEWERS
from discover.discover_codec.model_index import REPO_WEIGHTS
from discover.discover_codec.vae import SD21_VAE
from discover.errors import CodecError
from discover.io import write_bytes_atomic
from discover.weights import (
    PRIOR_COMPONENTS,
    hub_spec,
    prior_component_dir,
    resolve,
    resolve_pretrained_dir,
)

MASK_SOURCES = ("grounding", "gt", "none")


@register_codec("discover")
class DiscoverCodec(Codec):
    extension = "dsc"
    rate_increases_bits = False  # rate point = λ_R: larger weight on rate, fewer bits

    def __init__(self, name, cfg=None, threads=1):
        super().__init__(name, cfg, threads)
        self._models: dict = {}

    @property
    def device(self) -> str:
        return str(self.cfg.get("device", "cpu"))

    @property
    def gpus(self) -> int:  # type: ignore[override]
        return int(self.cfg.get("gpus", 1 if self.device.startswith("cuda") else 0))

    @property
    def model_id(self) -> str:
        return str(self.cfg.get("model_id") or self.cfg.get("trained") or self.name)

    @property
    def tasks(self) -> dict[str, str]:
        """Task name -> mask source."""
        return {
            t: str((spec or {}).get("mask", "grounding")) for t, spec in self.task_specs.items()
        }

    @property
    def task_specs(self) -> dict[str, dict]:
        return {str(k): dict(v or {}) for k, v in (self.cfg.get("tasks") or {}).items()}

    def consumers(self, has_annotations: bool, grounding_needs_annotations: bool) -> list[str]:
        """Consumers evaluated on a dataset: the configured ones whose masks it can give
        (``gt``, and ``grounding`` with the oracle grounder, need annotations)."""
        needs = {"gt", "grounding"} if grounding_needs_annotations else {"gt"}
        usable = [t for t, src in self.tasks.items() if src not in needs or has_annotations]
        wanted = self.cfg.get("consumers") or [HUMAN, *self.tasks]
        return [c for c in wanted if c == HUMAN or c in usable]

    @property
    def trained_dir(self) -> Path | None:
        """weights/<trained>/ of the repository (the DAG passes explicit paths instead)."""
        trained = self.cfg.get("trained")
        return REPO_WEIGHTS / str(trained) if trained else None

    def weight_path(self, rate) -> Path:
        weights = {str(k): v for k, v in (self.cfg.get("weights") or {}).items()}
        if str(rate) not in weights and self.trained_dir is not None:
            weights[str(rate)] = str(self.trained_dir / f"r{rate}.pth.tar")
        if str(rate) not in weights:
            raise CodecError(f"codec {self.name!r}: no weights for rate {rate}")
        return resolve(weights[str(rate)], None)

    @property
    def vae_ref(self) -> str:
        if self.cfg.get("vae"):
            return str(self.cfg["vae"])
        return str(self.trained_dir / "vae") if self.trained_dir is not None else SD21_VAE

    def official_weight(self, rate):
        if self.cfg.get("trained") or Path(self.vae_ref).exists():
            return None
        return hub_spec(self.vae_ref)

    def official_weights(self, rate) -> list:
        """The SD VAE (unless local) and, with composition from a Hub prior, its five parts."""
        specs = super().official_weights(rate)
        prior = (self.cfg.get("composition") or {}).get("prior")
        if prior and not Path(str(prior)).expanduser().is_dir():
            specs += [hub_spec(f"{prior}/{name}") for name in PRIOR_COMPONENTS]
        return list({s.filename: s for s in specs}.values())

    @property
    def composition(self):
        """CompositionSettings, or None ("w/o composition")."""
        cfg = self.cfg.get("composition")
        if cfg and not cfg.get("prior"):
            raise CodecError(
                f"config key codecs.{self.name}.composition.prior: the diffusion prior (an "
                "SD-layout directory or Hub id), unless the codec is trained: <a "
                "composition_training entry>"
            )
        return CompositionSettings.from_dict(cfg) if cfg else None

    def composer(self, rate):
        """The composition pipeline of a rate point (loaded once per job)."""
        # diffusers and the DISCOVER model load on use (every codec job imports this adapter)
        from discover.composition import CompositionPipeline

        key = ("composer", str(rate))
        if key not in self._models:
            self._models[key] = CompositionPipeline.from_settings(
                self.composition, rate, cache=self.weights_cache, device=self.device
            )
        return self._models[key]

    def check(self) -> str:
        """The files a job of this codec loads, each checked to be there: the codec of every
        rate point, the VAE and, with composition, the prior's parts and the control modules."""
        paths = [str(self.weight_path(r)) for r in self.rates]
        vae = resolve_pretrained_dir(self.vae_ref, self.weights_cache)
        if not (vae / "config.json").is_file():
            raise CodecError(
                f"codec {self.name!r}: VAE {vae} has no config.json (a save_pretrained "
                "directory of an AutoencoderKL)"
            )
        facts = [f"DISCOVER {self.model_id}", f"codec weights: {', '.join(paths)}", f"VAE {vae}"]
        settings = self.composition
        if settings is not None:
            for part in PRIOR_COMPONENTS:
                prior_component_dir(settings.prior, part, self.weights_cache)
            controls = [settings.control_dir(r) for r in self.rates]
            for control in controls:
                if control is not None and not (control / "config.json").is_file():
                    raise CodecError(
                        f"codec {self.name!r}: control module {control} is missing (a "
                        "save_pretrained directory per rate point, control/r<λ_R>/)"
                    )
            facts.append(f"prior {settings.prior}")
            if settings.control is not None:
                facts.append(f"control {', '.join(map(str, controls))}")
            steps = ", ".join(f"{v} {settings.steps_for(v)}" for v in VIEWERS)
            facts.append(f"composition steps: {steps}, start {settings.start}")
        return "; ".join(facts)

    def model(self, rate):
        """The DiscoverModel of a rate point (loaded once per job)."""
        # diffusers and the DISCOVER model load on use (every codec job imports this adapter)
        from discover.discover_codec.model import PRESETS, DiscoverModel

        key = str(rate)
        if key not in self._models:
            arch = self.cfg.get("architecture")
            self._models[key] = DiscoverModel.load(
                self.weight_path(rate),
                self.vae_ref,
                self.model_id,
                key,
                cache=self.weights_cache,
                device=self.device,
                codec_config=PRESETS[arch] if arch else None,
            )
        return self._models[key]

    # -- masks ------------------------------------------------------------------------------
    def task_boxes(
        self,
        annotations: Sequence[Mapping[str, Any]] | None,
        tasks: Sequence[str],
        grounded: Mapping[str, list] | None = None,
    ) -> dict[str, list]:
        """Boxes per task for one image: ``grounded`` (task -> the boxes the semantics stage
        found in this image), its COCO annotations (``gt``) or none."""
        out = {}
        for task in tasks:
            source = self.tasks[task]
            if source == "grounding":
                if grounded is None or task not in grounded:
                    raise CodecError(
                        f"codec {self.name!r}: task {task!r} takes its mask from the semantics "
                        "stage, but no grounding was given for it"
                    )
                out[task] = list(grounded[task])
            elif source == "gt":
                if annotations is None:
                    raise CodecError(
                        f"codec {self.name!r}: task {task!r} takes its mask from ground-truth "
                        "boxes, but the dataset has no annotations"
                    )
                out[task] = [a["bbox"] for a in annotations if not a.get("iscrowd", 0)]
            elif source == "none":
                out[task] = []
            else:
                raise CodecError(
                    f"codec {self.name!r}: task {task!r} has unknown mask source {source!r} "
                    f"(one of {', '.join(MASK_SOURCES)})"
                )
        return out

    # -- the Codec interface ----------------------------------------------------------------
    def encode_container(self, image: np.ndarray, rate, boxes: Mapping[str, list] | None = None):
        """The ``.dsc`` Container of ``image`` with a stream per task of ``boxes``."""
        # diffusers and the DISCOVER model load on use (every codec job imports this adapter)
        from discover.discover_codec.model import masks_from_boxes

        h, w = image.shape[:2]
        masks = masks_from_boxes(boxes or {}, h, w)
        return self.model(rate).encode(image, masks)

    def encode(self, image: np.ndarray, rate, path: Path, boxes=None) -> None:
        write_bytes_atomic(path, self.encode_container(image, rate, boxes).to_bytes())

    # -- batches (discover.stages.discover) -------------------------------------------------
    #: images of a batch share their padded size: sides multiples of the codec's 64
    batch_multiple = 64

    def analyze(self, images: Sequence[np.ndarray], rate):
        """The batched forward passes of an encode (g_a, h_a) of images of one padded size;
        :meth:`encode_item` finishes each image from its slice."""
        return self.model(rate).analyze(self.filled(images))

    def encode_item(self, analyzed, i: int, image: np.ndarray, rate, path: Path, boxes=None):
        """Write image ``i`` of an :meth:`analyze` batch (at ``batch_size`` 1 the bytes of
        :meth:`encode`)."""
        # diffusers and the DISCOVER model load on use (every codec job imports this adapter)
        from discover.discover_codec.model import masks_from_boxes

        h, w = image.shape[:2]
        y, z = analyzed
        container = self.model(rate).encode_analyzed(
            (h, w), y[i : i + 1], z[i : i + 1], masks_from_boxes(boxes or {}, h, w)
        )
        write_bytes_atomic(path, container.to_bytes())

    def decode_entropy(self, path: Path, shape: tuple[int, int], rate, consumer: str = HUMAN):
        """The entropy-decoded part of a stream (ŷ part, ẑ) a consumer receives: per image,
        the same computation as a single-image decode; :meth:`decode_batch` finishes it."""
        container = Container.from_bytes(Path(path).read_bytes(), str(path))
        if (container.height, container.width) != tuple(shape):
            raise CodecError(
                f"{path}: stream is {container.width}x{container.height}, "
                f"expected {shape[1]}x{shape[0]}"
            )
        return self.model(rate).decode_y(container, consumer, str(path))

    def decode_batch(
        self,
        decoded: Sequence,
        shapes: Sequence[tuple[int, int]],
        rate,
        viewer: str = HUMAN,
    ) -> list[np.ndarray]:
        """Images of a batch of :meth:`decode_entropy` results of one latent grid for
        ``viewer``: g_s, then the VAE decoder or the composition, as one batch."""
        if viewer not in VIEWERS:
            raise CodecError(f"codec {self.name!r}: viewer {viewer!r} is not one of {VIEWERS}")
        model, n = self.model(rate), len(decoded)
        decoded, shapes = self.filled(decoded), self.filled(shapes)
        settings = self.composition
        if settings is None:
            return model.decode_images(decoded, shapes)[:n]
        # diffusers loads on use (every codec job imports this adapter)
        from discover.composition import compose_images

        z_c_hat = model.synthesize(decoded)
        return compose_images(z_c_hat, self.composer(rate), settings, shapes, viewer)[:n]

    def decode_views(self) -> list[str]:
        """The viewers that need a decode of their own: both when the composition samples a
        different number of steps for each, else ``human`` alone (one decode serves both)."""
        settings = self.composition
        if settings is None or settings.steps_for(MACHINE) == settings.steps_for(HUMAN):
            return [HUMAN]
        return list(VIEWERS)

    def decode_settings(self, viewer: str = HUMAN) -> tuple:
        """What besides the received bits decides the image a viewer's decode gives: two
        decodes with equal settings and equal bits (``Container.decodes_like``) give the same
        image."""
        if viewer not in VIEWERS:
            raise CodecError(f"codec {self.name!r}: viewer {viewer!r} is not one of {VIEWERS}")
        settings = self.composition
        if settings is None:
            return ("vae",)
        return ("composition", settings.steps_for(viewer))

    def unet_evaluations(self, rate) -> int:
        """UNet evaluations the composition of a rate point has run so far in this job (0
        without composition, or before its first decode)."""
        composer = self._models.get(("composer", str(rate)))
        return 0 if composer is None else composer.unet_evaluations

    def decode(
        self,
        path: Path,
        shape: tuple[int, int],
        rate,
        consumer: str = HUMAN,
        viewer: str = HUMAN,
    ):
        """The image ``consumer``'s stream at ``path`` decodes to for ``viewer``."""
        if viewer not in VIEWERS:
            raise CodecError(f"codec {self.name!r}: viewer {viewer!r} is not one of {VIEWERS}")
        container = Container.from_bytes(Path(path).read_bytes(), str(path))
        if (container.height, container.width) != tuple(shape):
            raise CodecError(
                f"{path}: stream is {container.width}x{container.height}, "
                f"expected {shape[1]}x{shape[0]}"
            )
        settings = self.composition
        if settings is None:
            return self.model(rate).decode(container, consumer, str(path))
        # diffusers loads on use (every codec job imports this adapter)
        from discover.composition import decode_composed

        return decode_composed(
            self.model(rate),
            container,
            consumer,
            self.composer(rate),
            settings,
            str(path),
            viewer,
        )
