"""DISCOVER encode / decode: image + task masks -> ``.dsc`` container -> ẑ_c -> image.

One encode serves every consumer: each task gets its own ỹ_i stream, the human consumer all of ŷ.
Decoding "without composition" maps ẑ_c through the VAE decoder (paper Fig. 8); the generative
composition (ControlNet on SD, :func:`discover.composition.decode_composed`) starts from the
same ẑ_c.

Devices: the entropy parameters (means rounded to integers, scales bucketed into CDF indexes)
come out of float convolutions; a decoder on another kind of device (another GPU model, another
convolution algorithm) may compute a value on the other side of a rounding boundary and read the
valid bytes of a stream into other symbols. The container records the device kind that encoded
it and a check of every stream's values; :meth:`DiscoverModel.decode_y` refuses a stream whose
decoded values fail their check, naming both devices, so such a decode is an error, never a
wrong image. Encode and decode on the same kind of device; CPU to CPU is bit-exact across
processes, which the tests check.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from discover.discover_codec.bitstream import HUMAN, Container, Part
from discover.discover_codec.entropy import (
    decode_region,
    encode_region,
    region_check,
    tensor_check,
)
from discover.discover_codec.masks import boxes_to_mask
from discover.discover_codec.model_index import ModelDir, find_model_dir
from discover.discover_codec.net import (
    FULL,
    MINI,
    CodecConfig,
    DiscoverCodecNet,
    latent_grid,
    pad_image,
)
from discover.discover_codec.vae import decode_latent, encode_latent, load_vae
from discover.errors import BitstreamError, CodecError
from discover.images import image_to_tensor, tensor_to_image

PRESETS = {"full": FULL, "mini": MINI}
#: buffers rebuilt by ``update()``; not part of a saved codec
_CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def portable_state(net: DiscoverCodecNet) -> dict[str, torch.Tensor]:
    """The state dict without the CDF tables (rebuilt deterministically on load)."""
    return {k: v for k, v in net.state_dict().items() if not k.endswith(_CDF_BUFFERS)}


def load_codec_net(weights: str | os.PathLike, cfg: CodecConfig | None = None) -> DiscoverCodecNet:
    """A codec state dict (+ its JSON sidecar, which names the codec config) -> ready network."""
    path = Path(weights)
    sidecar = path.with_name(path.name.replace(".pth.tar", "") + ".json")
    if cfg is None:
        if not sidecar.is_file():
            raise CodecError(f"{path}: no sidecar {sidecar.name} naming the codec config")
        cfg = CodecConfig.from_dict(json.loads(sidecar.read_text())["codec"])
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CodecError(f"cannot read codec weights {path}: {exc}") from exc
    state = {k: v for k, v in state.items() if not k.endswith(_CDF_BUFFERS)}
    net = DiscoverCodecNet(cfg)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(_CDF_BUFFERS)]
    if missing or unexpected:
        raise CodecError(
            f"codec weights {path} do not fit the codec config "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    net.update(force=True)
    return net.eval()


#: Module prefixes of CompressAI's ``Elic2022Official`` that an ELIC checkpoint must have.
ELIC_PREFIXES = ("g_a.", "g_s.", "latent_codec.")


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file: a bare state dict, or one under ``state_dict`` /
    ``model`` (training scripts' layouts), ``module.`` prefixes (DDP) removed."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CodecError(f"cannot read ELIC checkpoint {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CodecError(f"ELIC checkpoint {path} holds no state dict ({type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_elic_state(net: DiscoverCodecNet, path: str | os.PathLike) -> dict[str, list[str]]:
    """Start ``net`` from an ELIC checkpoint in the layout of CompressAI's ``Elic2022Official``:
    every tensor whose name and shape match is copied (g_a, the hyperprior, the channel-context
    and checkerboard nets, and the layers of g_s that DISCOVER keeps with ELIC's shapes); the
    rest of ``net`` keeps its fresh initialisation. Returns the names ``loaded``,
    ``initialised`` (in ``net``, not loaded) and ``dropped`` (in the file, not used, with the
    reason). A file with none of ELIC's modules is an error naming it."""
    path = Path(path)
    state = {k: v for k, v in _checkpoint_state(path).items() if not k.endswith(_CDF_BUFFERS)}
    if not any(k.startswith(ELIC_PREFIXES) for k in state):
        raise CodecError(
            f"{path} is not an ELIC checkpoint: none of its {len(state)} tensors is under "
            f"{', '.join(ELIC_PREFIXES)} (CompressAI's Elic2022Official layout)"
        )
    own = {k: v for k, v in net.state_dict().items() if not k.endswith(_CDF_BUFFERS)}
    take, dropped = {}, []
    for key, value in state.items():
        if key not in own:
            dropped.append(f"{key} (not in DISCOVER's codec)")
        elif tuple(value.shape) != tuple(own[key].shape):
            dropped.append(f"{key} (shape {list(value.shape)}, DISCOVER's {list(own[key].shape)})")
        else:
            take[key] = value.to(own[key].dtype)
    net.load_state_dict(take, strict=False)
    return {
        "loaded": sorted(take),
        "initialised": sorted(k for k in own if k not in take),
        "dropped": sorted(dropped),
    }


def masks_from_boxes(
    boxes: Mapping[str, Iterable[Sequence[float]]], height: int, width: int
) -> dict[str, np.ndarray]:
    """Task name -> [x, y, w, h] pixel boxes  ==>  task name -> latent mask."""
    grid = latent_grid(height, width)
    return {task: boxes_to_mask(b, grid, (height, width)) for task, b in boxes.items()}


def device_kind(device: torch.device | str) -> str:
    """The kind of device whose float arithmetic makes a stream's entropy parameters: the GPU
    model for CUDA, the architecture for a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{platform.machine()}"


def shared_masks(masks: Mapping[str, np.ndarray]) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """Tasks grouped by identical mask (in the order of their first task): one part each."""
    groups: list[tuple[list[str], np.ndarray]] = []
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        for names, m in groups:
            if np.array_equal(m, mask):
                names.append(name)
                break
        else:
            groups.append(([name], mask))
    return [(tuple(names), m) for names, m in groups]


class DiscoverModel:
    """A DISCOVER codec at one rate point together with its diffusion VAE."""

    def __init__(self, net: DiscoverCodecNet, vae, model_id: str, rate: str, device="cpu"):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            # entropy parameters must come out the same in encoder and decoder
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.net = net.to(self.device).eval()
        self.vae = vae.to(self.device).eval() if vae is not None else None
        self.model_id = model_id
        self.rate = str(rate)
        self.fingerprint = net.fingerprint()

    @classmethod
    def load(
        cls,
        weights: str | os.PathLike,
        vae: str | os.PathLike | None,
        model_id: str,
        rate,
        *,
        cache: str | os.PathLike | None = None,
        device: str = "cpu",
        codec_config: CodecConfig | None = None,
    ) -> DiscoverModel:
        net = load_codec_net(weights, codec_config)
        return cls(net, load_vae(vae, cache) if vae else None, model_id, rate, device)

    # -- encoding ----------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, image: np.ndarray, masks: Mapping[str, np.ndarray] | None = None) -> Container:
        """Encode ``image`` (H, W, 3 uint8) once: a ỹ stream per distinct task mask (tasks
        with identical masks share it), ẑ and the rest, each with the check of its values."""
        y, z = self.analyze([image])
        return self.encode_analyzed(image.shape[:2], y, z, masks)

    @torch.inference_mode()
    def analyze(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, z) = (g_a(x), h_a(y)) of images whose padded sizes are equal, as one batch:
        the forward passes a batched encode shares. Nothing the decoder recomputes (ẑ's
        hyper-synthesis, the context models) is computed here."""
        sizes = {latent_grid(*im.shape[:2]) for im in images}
        if len(sizes) != 1:
            raise CodecError(f"a batch needs images of one padded size, got latent grids {sizes}")
        x = torch.cat([pad_image(image_to_tensor(im)) for im in images]).to(self.device)
        y = self.net.g_a(x)
        return y, self.net.hyper.h_a(y)

    @torch.inference_mode()
    def encode_analyzed(
        self,
        shape: tuple[int, int],
        y: torch.Tensor,
        z: torch.Tensor,
        masks: Mapping[str, np.ndarray] | None = None,
    ) -> Container:
        """The container of one image (``shape`` = its height, width) from its (1, ...) slice
        of :meth:`analyze`: ẑ, then the entropy parameters from ẑ alone and every stream's
        contexts from that stream's own visible ŷ, computed for this image alone exactly as a
        single-image decoder computes them, so that no stream depends on its batch."""
        if masks and HUMAN in masks:
            raise CodecError(
                f"a task cannot be named {HUMAN!r}: that is the consumer of the whole stream"
            )
        h, w = shape
        grid = latent_grid(h, w)
        if tuple(y.shape[-2:]) != grid:
            raise CodecError(f"latent of grid {tuple(y.shape[-2:])} for an image of grid {grid}")
        net = self.net
        y_hat = torch.round(y)
        z_stream = net.entropy_bottleneck.compress(z)[0]
        z_hat = net.entropy_bottleneck.decompress([z_stream], z.shape[-2:])
        hyper = net.hyper.h_s(z_hat)
        union = torch.zeros(grid, dtype=torch.bool, device=self.device)
        parts = []
        for names, mask in shared_masks(masks or {}):
            if mask.shape != grid:
                raise CodecError(f"mask of task(s) {names} is {mask.shape}, latent grid is {grid}")
            m = torch.from_numpy(mask).to(self.device)
            stream = encode_region(net, hyper, y_hat, m)
            parts.append(Part(names, mask, stream, region_check(y_hat, m)))
            union |= m
        rest = encode_region(net, hyper, y_hat, ~union, known=union)
        return Container(
            self.model_id,
            self.fingerprint,
            self.rate,
            h,
            w,
            z_stream,
            parts,
            rest,
            device=device_kind(self.device),
            z_check=tensor_check(z_hat),
            rest_check=region_check(y_hat, ~union),
        )

    # -- decoding ----------------------------------------------------------------------------
    def check(self, c: Container, source: str = "stream") -> None:
        if c.model_id != self.model_id or c.rate != self.rate:
            raise BitstreamError(
                f"{source}: encoded with model {c.model_id!r} at rate {c.rate}, "
                f"this decoder is {self.model_id!r} at rate {self.rate}"
            )
        if c.weights != self.fingerprint:
            raise BitstreamError(
                f"{source}: encoded with weights {c.weights.hex()} of {c.model_id!r}, "
                f"this decoder has weights {self.fingerprint.hex()}"
            )

    @torch.inference_mode()
    def decode_y(
        self, c: Container, consumer: str, source: str = "stream"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ŷ part the consumer receives, ẑ): ỹ_i for a task, all of ŷ for ``human``; every
        stream's decoded values verified against the encoder's check."""
        self.check(c, source)
        part = c.for_consumer(consumer)
        net = self.net
        gh, gw = c.grid
        try:
            z_hat = net.entropy_bottleneck.decompress([c.z_stream], (gh // 4, gw // 4))
            self._verify(tensor_check(z_hat), c.z_check, "ẑ", c, source)
            hyper = net.hyper.h_s(z_hat)
            y_full = torch.zeros((1, net.cfg.M, gh, gw), device=self.device)
            union = torch.zeros((gh, gw), dtype=torch.bool, device=self.device)
            for p in part.parts:
                m = torch.from_numpy(p.mask).to(self.device)
                y_t = decode_region(net, hyper, p.stream, m, torch.zeros_like(y_full))
                self._verify(region_check(y_t, m), p.check, "+".join(p.names), c, source)
                y_full = torch.where(m, y_t, y_full)
                union |= m
            if consumer == HUMAN:
                decode_region(net, hyper, part.rest, ~union, y_full)
                self._verify(region_check(y_full, ~union), part.rest_check, "rest", c, source)
        except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
            raise BitstreamError(f"{source}: entropy decoding failed ({exc})") from exc
        return y_full, z_hat

    def _verify(self, got: bytes, expected: bytes, stream: str, c: Container, source: str):
        if got != expected:
            raise BitstreamError(
                f"{source}: stream {stream!r} decodes to other values than were encoded "
                f"(encoded on {c.device or 'an unrecorded device'}, decoded on "
                f"{device_kind(self.device)}): the entropy parameters differ between the two "
                "devices' float arithmetic; decode on the kind of device that encoded it"
            )

    @torch.inference_mode()
    def decode_latent(self, c: Container, consumer: str, source: str = "stream") -> torch.Tensor:
        """ẑ_c = g_s(ỹ_i, M(ẑ)) on the padded grid (1, 4, H'/8, W'/8)."""
        return self.synthesize([self.decode_y(c, consumer, source)])

    @torch.inference_mode()
    def decode(self, c: Container, consumer: str, source: str = "stream") -> np.ndarray:
        """The image without composition: VAE decoder on ẑ_c, cropped to the image size."""
        if self.vae is None:
            raise CodecError(f"model {self.model_id!r} has no VAE to decode images with")
        return self.decode_images([self.decode_y(c, consumer, source)], [(c.height, c.width)])[0]

    @torch.inference_mode()
    def decode_images(
        self,
        decoded: Sequence[tuple[torch.Tensor, torch.Tensor]],
        shapes: Sequence[tuple[int, int]],
    ) -> list[np.ndarray]:
        """Images without composition of a batch of :meth:`decode_y` results whose latent grids
        are equal: g_s and the VAE decoder as one batch, each image cropped to its ``shapes``
        entry (height, width)."""
        if self.vae is None:
            raise CodecError(f"model {self.model_id!r} has no VAE to decode images with")
        x = decode_latent(self.vae, self.synthesize(decoded))
        return [tensor_to_image(x[i : i + 1], h, w) for i, (h, w) in enumerate(shapes)]

    @torch.inference_mode()
    def synthesize(self, decoded: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """ẑ_c = g_s(ỹ_i, M(ẑ)) of a batch of :meth:`decode_y` results (equal latent grids)."""
        grids = {tuple(y.shape[-2:]) for y, _ in decoded}
        if len(grids) != 1:
            raise CodecError(f"a batch needs streams of one latent grid, got {grids}")
        y = torch.cat([y for y, _ in decoded])
        z = torch.cat([z for _, z in decoded])
        return self.net.synthesize(y, z)

    @torch.inference_mode()
    def target_latent(self, image: np.ndarray) -> torch.Tensor:
        """z_c = E(x) of the padded image, the latent ẑ_c approximates."""
        return encode_latent(self.vae, pad_image(image_to_tensor(image)).to(self.device))


def load_model_dir(
    model: str | os.PathLike | ModelDir,
    rate,
    *,
    vae: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    device: str = "cpu",
) -> DiscoverModel:
    """The rate point ``rate`` of a model directory (or the name of one under the repository's
    weights/, :func:`discover.discover_codec.model_index.find_model_dir`), with the VAE its
    ``model_index.json`` names unless ``vae`` is given; the directory's name is the model id
    written into streams."""
    found = model if isinstance(model, ModelDir) else find_model_dir(model)
    return DiscoverModel.load(
        found.weights(rate), vae or found.vae, found.model_id, rate, cache=cache, device=device
    )
