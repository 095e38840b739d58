"""MS-ILLM (Muckley et al., ICML 2023) through its package, NeuralCompression.

Rate point = quality 1-6, the six released models (``neuralcompression.zoo`` names them by
target bpp). Weights: ``weights: {rate: file}`` or the official checkpoint from the weights
cache (`snakemake fetch_weights`; the weights are CC-BY-NC 4.0). The model is built and loaded
exactly as ``neuralcompression.zoo.msillm_quality_N`` does, minus the download. Streams use the
``.cai`` container of discover.codecs.compressai_models (latent and hyper-latent strings).
Install with ``pip install -e '.[comparators]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.compressai_models import pack, read_stream
from discover.codecs.registry import register_codec
from discover.errors import CodecError
from discover.images import image_to_tensor, tensor_to_image
from discover.io import write_bytes_atomic
from discover.weights import WeightSpec, resolve

if TYPE_CHECKING:
    import torch

# The six released models, as neuralcompression.zoo._msillm.VALID_WEIGHTS names them (written out
# so that planning a run reads them without importing torch; tests/test_illm_codec.py holds them
# against the package's list).
MSILLM_WEIGHTS = (
    "target_0.035bpp",
    "target_0.07bpp",
    "target_0.14bpp",
    "target_0.3bpp",
    "target_0.45bpp",
    "target_0.9bpp",
)
# The checkpoint location used by neuralcompression.zoo._msillm (inlined there too).
MSILLM_URL = "https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm/msillm_{}.ckpt"


def _neuralcompression():
    try:
        import neuralcompression.models as models
        from neuralcompression.zoo._msillm import VALID_WEIGHTS
    except ImportError as exc:
        raise CodecError(
            f"the illm codec needs NeuralCompression: pip install -e '.[comparators]' ({exc})"
        ) from exc
    return models, VALID_WEIGHTS


def official_weight(quality: int) -> WeightSpec:
    if not 1 <= int(quality) <= len(MSILLM_WEIGHTS):
        raise CodecError(f"MS-ILLM has qualities 1-{len(MSILLM_WEIGHTS)}, not {quality}")
    name = MSILLM_WEIGHTS[int(quality) - 1]
    return WeightSpec(f"msillm/{name}", MSILLM_URL.format(name))


@register_codec("illm")
class IllmCodec(Codec):
    extension = "cai"
    gpus = 0  # entropy coding is CPU-only in NeuralCompression (force_cpu)

    def __init__(self, name, cfg=None, threads=1):
        super().__init__(name, cfg, threads)
        self._models: dict[str, torch.nn.Module] = {}

    def weight_path(self, rate) -> Path:
        weights = {str(k): v for k, v in (self.cfg.get("weights") or {}).items()}
        if weights:
            if str(rate) not in weights:
                raise CodecError(f"codec {self.name!r}: no weights for rate {rate}")
            return resolve(weights[str(rate)], None)
        return resolve(official_weight(int(rate)), self.weights_cache)

    def model(self, rate) -> torch.nn.Module:
        key = str(rate)
        if key not in self._models:
            import torch  # the plan reads this codec's facts without torch

            models, _ = _neuralcompression()
            arch = dict(self.cfg.get("model") or {})
            net = models.HiFiCAutoencoder(**arch)
            path = self.weight_path(rate)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except Exception as exc:
                raise CodecError(
                    f"codec {self.name!r}: weights {path} do not load into "
                    f"HiFiCAutoencoder({arch}): {exc}"
                ) from exc
            net.eval()
            net.update(force=True)
            self._models[key] = net
        return self._models[key]

    def official_weight(self, rate) -> WeightSpec | None:
        return None if self.cfg.get("weights") else official_weight(int(rate))

    def check(self) -> str:
        _neuralcompression()
        return ", ".join(str(self.weight_path(r)) for r in self.rates)

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        import torch  # the plan reads this codec's facts without torch

        x = image_to_tensor(image)
        with torch.no_grad():
            out = self.model(rate).compress(x, force_cpu=True)
        shape = {"image_size": list(out.image_size), "padded_size": list(out.padded_size)}
        data = pack(
            image.shape[0],
            image.shape[1],
            [list(out.latent_strings), list(out.hyper_latent_strings)],
            shape,
        )
        write_bytes_atomic(path, data)

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        import torch  # the plan reads this codec's facts without torch
        from neuralcompression import HyperpriorCompressedOutput

        strings, sizes = read_stream(path, shape)
        try:
            data = HyperpriorCompressedOutput(
                latent_strings=strings[0],
                hyper_latent_strings=strings[1],
                image_size=tuple(sizes["image_size"]),
                padded_size=tuple(sizes["padded_size"]),
            )
            with torch.no_grad():
                x_hat = self.model(rate).decompress(data, force_cpu=True)
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise CodecError(f"{path}: stream does not decode with this model ({exc})") from exc
        return tensor_to_image(x_hat, *shape)
