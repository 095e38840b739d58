"""Learned codecs from CompressAI (bmshj2018-hyperprior, mbt2018-mean, cheng2020-anchor, ELIC...)
with real entropy-coded bitstreams.

Rate point = quality index. Weights: ``weights: {rate: path}`` in the codec's config (e.g. the
small models the pipeline trains for the demo), otherwise the official CompressAI file for
(architecture, metric, quality) from the weights cache (`snakemake fetch_weights` fills it).
Both go through CompressAI's own loading path (``load_pretrained`` + ``from_state_dict``).

File format (``.cai``): magic ``DCAI``, format version (1 byte), a length-prefixed minified JSON
header {image height/width, the model's ``shape`` output, the nesting of ``strings``}, then every
entropy-coded string length-prefixed (4 bytes). The header is part of the file and so of the bits.
Entropy coding runs on the CPU (CompressAI's range coder); on a GPU only the transforms run, and
CompressAI notes that likelihoods computed on different devices can break decoding, so encode
and decode on the same kind of device.
"""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError
from discover.images import image_to_tensor, tensor_to_image
from discover.io import write_bytes_atomic
from discover.weights import WeightSpec, resolve

if TYPE_CHECKING:
    import torch

MAGIC = b"DCAI"
VERSION = 1
PAD_MULTIPLE = 64  # 2^6: six stride-2 stages in the hyperprior models


def official_weight(architecture: str, metric: str, quality: int) -> WeightSpec:
    from compressai.zoo.image import model_urls

    try:
        url = model_urls[architecture][metric][int(quality)]
    except KeyError as exc:
        raise CodecError(
            f"CompressAI has no official weights for {architecture}/{metric}/quality {quality}"
        ) from exc
    return WeightSpec(f"compressai/{architecture}/{metric}/{quality}", url)


def load_model(architecture: str, weight_path: Path) -> torch.nn.Module:
    """CompressAI's loading path for a state dict file (checkpoint dicts are unwrapped)."""
    import torch
    from compressai.models import Elic2022Chandelier, Elic2022Official
    from compressai.zoo.image import model_architectures
    from compressai.zoo.pretrained import load_pretrained

    classes = dict(model_architectures)
    classes.update(
        {"elic2022-official": Elic2022Official, "elic2022-chandelier": Elic2022Chandelier}
    )
    if architecture not in classes:
        raise CodecError(
            f"unknown CompressAI architecture {architecture!r} "
            f"(one of {', '.join(sorted(classes))})"
        )
    try:
        state = torch.load(weight_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CodecError(f"cannot read weights {weight_path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model = classes[architecture].from_state_dict(load_pretrained(state))
    except (KeyError, RuntimeError) as exc:
        raise CodecError(f"weights {weight_path} do not fit {architecture}: {exc}") from exc
    model.update(force=True)
    return model.eval()


def _shape_to_json(obj: Any) -> Any:
    if isinstance(obj, tuple | list):  # torch.Size is a tuple
        return [_shape_to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _shape_to_json(v) for k, v in obj.items()}
    return int(obj) if isinstance(obj, int | np.integer) else obj


def _flatten(strings: Any) -> tuple[Any, list[bytes]]:
    """Nested lists of bytes -> (skeleton of counts, flat list)."""
    if isinstance(strings, bytes):
        return None, [strings]
    skel, flat = [], []
    for s in strings:
        k, f = _flatten(s)
        skel.append(k)
        flat.extend(f)
    return skel, flat


def _unflatten(skel: Any, flat: list[bytes]) -> Any:
    if skel is None:
        return flat.pop(0)
    return [_unflatten(k, flat) for k in skel]


def pack(height: int, width: int, strings: Any, shape: Any) -> bytes:
    skel, flat = _flatten(strings)
    header = json.dumps(
        {"h": height, "w": width, "shape": _shape_to_json(shape), "s": skel}, separators=(",", ":")
    ).encode()
    out = [MAGIC, bytes([VERSION]), struct.pack(">H", len(header)), header]
    for s in flat:
        out += [struct.pack(">I", len(s)), s]
    return b"".join(out)


def unpack(data: bytes, source: str) -> tuple[int, int, Any, Any]:
    def fail(why: str) -> CodecError:
        return CodecError(f"{source}: not a valid CompressAI stream ({why})")

    if data[:4] != MAGIC:
        raise fail("bad magic")
    if len(data) < 7 or data[4] != VERSION:
        raise fail(f"unsupported format version {data[4] if len(data) > 4 else '?'}")
    (hlen,) = struct.unpack(">H", data[5:7])
    try:
        header = json.loads(data[7 : 7 + hlen])
        skel, height, width = header["s"], int(header["h"]), int(header["w"])
    except (ValueError, KeyError, TypeError) as exc:
        raise fail("corrupt header") from exc
    pos, flat = 7 + hlen, []
    while pos < len(data):
        if pos + 4 > len(data):
            raise fail("truncated")
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        if pos + 4 + n > len(data):
            raise fail("truncated")
        flat.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    try:
        expected = len(_flatten(_unflatten(skel, [b""] * 10_000))[1])
    except (TypeError, IndexError) as exc:
        raise fail("corrupt header") from exc
    if len(flat) != expected:
        raise fail(f"{len(flat)} strings, header announces {expected}")
    return height, width, _unflatten(skel, flat), header["shape"]


def read_stream(path: Path, shape: tuple[int, int]) -> tuple[Any, Any]:
    """Strings and latent shapes of a ``.cai`` file whose image must be ``shape`` (H, W)."""
    h, w, strings, latent_shape = unpack(path.read_bytes(), str(path))
    if (h, w) != tuple(shape):
        raise CodecError(f"{path}: stream is {w}x{h}, expected {shape[1]}x{shape[0]}")
    return strings, latent_shape


@register_codec("compressai")
class CompressAICodec(Codec):
    extension = "cai"

    def __init__(self, name, cfg=None, threads=1):
        super().__init__(name, cfg, threads)
        self._models: dict[str, torch.nn.Module] = {}

    @property
    def gpus(self) -> int:  # type: ignore[override]
        """A cluster job asks for a GPU when the model runs on one."""
        device = str(self.cfg.get("device", "cpu"))
        return int(self.cfg.get("gpus", 1 if device.startswith("cuda") else 0))

    @property
    def device(self) -> torch.device:
        import torch  # the plan reads this codec's facts without torch

        return torch.device(self.cfg.get("device", "cpu"))

    def weight_path(self, rate) -> Path:
        weights = {str(k): v for k, v in (self.cfg.get("weights") or {}).items()}
        if weights:
            if str(rate) not in weights:
                raise CodecError(
                    f"codec {self.name!r}: no weights for rate {rate} in codecs.{self.name}.weights"
                )
            return resolve(weights[str(rate)], None)
        spec = official_weight(self.cfg["architecture"], self.cfg.get("metric", "mse"), rate)
        return resolve(spec, self.weights_cache)

    def official_weight(self, rate) -> WeightSpec | None:
        if self.cfg.get("weights") or self.cfg.get("trained"):
            return None
        return official_weight(self.cfg["architecture"], self.cfg.get("metric", "mse"), rate)

    def check(self) -> str:
        import compressai

        paths = [str(self.weight_path(r)) for r in self.rates]
        return f"compressai {compressai.__version__}, weights: {', '.join(paths)}"

    def model(self, rate) -> torch.nn.Module:
        key = str(rate)
        if key not in self._models:
            self._models[key] = load_model(self.cfg["architecture"], self.weight_path(rate)).to(
                self.device
            )
        return self._models[key]

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        import torch  # the plan reads this codec's facts without torch
        import torch.nn.functional as F

        h, w = image.shape[:2]
        x = image_to_tensor(image)
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        x = F.pad(x, (0, pw, 0, ph), mode="replicate").to(self.device)
        with torch.no_grad():
            out = self.model(rate).compress(x)
        write_bytes_atomic(path, pack(h, w, out["strings"], out["shape"]))

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        import torch  # the plan reads this codec's facts without torch

        strings, latent_shape = read_stream(path, shape)
        try:
            with torch.no_grad():
                x_hat = self.model(rate).decompress(strings, latent_shape)["x_hat"]
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CodecError(f"{path}: stream does not decode with this model ({exc})") from exc
        return tensor_to_image(x_hat, *shape)

    # -- batches (discover.stages.codecs) ----------------------------------------------------
    # The analysis and synthesis transforms (g_a, g_s) run on a batch; CompressAI's own
    # compress / decompress run per image around them (hyper-synthesis, context models,
    # entropy coding), so an image's entropy parameters are computed at the encoder exactly as
    # a single-image decoder computes them. Every CompressAI model's compress starts with
    # ``y = self.g_a(x)`` and its decompress ends with ``self.g_s(y_hat).clamp_(0, 1)``: a
    # view of the model whose g_a returns the batch's slice, and whose g_s keeps ŷ, runs them.
    batch_multiple = PAD_MULTIPLE

    def analyze(self, images, rate):
        """y = g_a(x) of a batch of images of one padded size (filled to ``batch_size``)."""
        import torch  # the plan reads this codec's facts without torch

        x = torch.cat([_padded(im) for im in self.filled(images)]).to(self.device)
        with torch.no_grad():
            return self.model(rate).g_a(x)

    def encode_item(self, analyzed, i: int, image: np.ndarray, rate, path: Path) -> None:
        """Write image ``i`` of an :meth:`analyze` batch (at ``batch_size`` 1 the bytes of
        :meth:`encode`)."""
        import torch  # the plan reads this codec's facts without torch

        h, w = image.shape[:2]
        view = _with(self.model(rate), g_a=_given(analyzed[i : i + 1]))
        with torch.no_grad():
            out = view.compress(None)
        write_bytes_atomic(path, pack(h, w, out["strings"], out["shape"]))

    def decode_entropy(self, path: Path, shape: tuple[int, int], rate):
        """ŷ of one stream (CompressAI's decompress up to g_s); :meth:`decode_batch` finishes
        it."""
        import torch  # the plan reads this codec's facts without torch

        strings, latent_shape = read_stream(path, shape)
        keep = _kept()
        view = _with(self.model(rate), g_s=keep)
        try:
            with torch.no_grad():
                view.decompress(strings, latent_shape)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CodecError(f"{path}: stream does not decode with this model ({exc})") from exc
        return keep.y_hat

    def decode_batch(self, decoded, shapes, rate) -> list[np.ndarray]:
        """x̂ = g_s(ŷ) of a batch of :meth:`decode_entropy` results of one latent size, each
        image cropped to its ``shapes`` entry (height, width)."""
        import torch  # the plan reads this codec's facts without torch

        n = len(decoded)
        with torch.no_grad():
            x_hat = self.model(rate).g_s(torch.cat(self.filled(decoded))).clamp_(0, 1)
        return [tensor_to_image(x_hat[k : k + 1], *shapes[k]) for k in range(n)]


def _padded(image: np.ndarray):
    import torch.nn.functional as F

    h, w = image.shape[:2]
    x = image_to_tensor(image)
    return F.pad(x, (0, (-w) % PAD_MULTIPLE, 0, (-h) % PAD_MULTIPLE), mode="replicate")


def _with(model, **modules):
    """A shallow view of ``model`` sharing its parameters and entropy models, with some
    submodules replaced (thread-safe: the model itself is left as it is)."""
    view = copy.copy(model)
    view._modules = dict(model._modules)
    for name, module in modules.items():
        view._modules[name] = module
    return view


def _given(y):
    """A module standing in for g_a: returns the analysed slice ``y`` of a batch, whatever it
    is given (a module, so that the view's parameters() still walks its submodules)."""
    from torch import nn

    class Given(nn.Module):
        def forward(self, _x):
            return y

    return Given()


def _kept():
    """A module standing in for g_s: keeps ŷ (``.y_hat``), returns a placeholder for
    CompressAI's ``clamp_``."""
    from torch import nn

    class Kept(nn.Module):
        y_hat = None

        def forward(self, y_hat):
            self.y_hat = y_hat.clone()
            return y_hat.new_zeros(1)

    return Kept()
