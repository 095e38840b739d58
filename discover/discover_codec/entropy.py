"""Entropy coding of a masked ŷ: one rANS stream per task region plus one for the rest.

Contexts (ELIC: channel groups, then checkerboard anchors before non-anchors) are always computed
from ``y_visible``: ŷ where the decoder of *this* stream knows it, zero everywhere else.

* **Task stream i** codes the positions inside the task mask m_i. Its decoder holds only ẑ and
  this stream, so ``y_visible`` starts at zero and fills with the task's own elements as they are
  decoded: everything outside m_i enters every context as 0. The stream decodes alone.
* **Rest stream** codes the positions outside U (the union of all task masks). Its decoder (the
  human consumer) first decodes every task stream, so ``y_visible`` starts as ŷ on U and is
  complete once the rest has been decoded: the rest uses exactly ELIC's full contexts.

Encoder and decoder run the same function (:func:`code_positions`) on the same tensors in the
same order, so their context computations agree bit for bit on one machine.
Because ŷ = round(y) does not depend on the context, the streams agree where masks overlap.
"""

from __future__ import annotations

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder

from discover.discover_codec.bitstream import values_check
from discover.discover_codec.net import DiscoverCodecNet, anchor_mask


class _Tables:
    """CDF tables of the Gaussian conditional (same for every group after ``update()``)."""

    def __init__(self, net: DiscoverCodecNet):
        g = net.gaussian(0)
        self.gaussian = g
        self.cdf = g.quantized_cdf.tolist()
        self.cdf_lengths = g.cdf_length.reshape(-1).int().tolist()
        self.offsets = g.offset.reshape(-1).int().tolist()


def code_positions(
    net: DiscoverCodecNet,
    hyper_params: torch.Tensor,
    y_visible: torch.Tensor,
    coded: torch.Tensor,
    *,
    y_hat: torch.Tensor | None = None,
    encoder: BufferedRansEncoder | None = None,
    decoder: RansDecoder | None = None,
) -> torch.Tensor:
    """Encode (``y_hat`` + ``encoder``) or decode (``decoder``) the elements of ŷ at the
    positions ``coded`` (h, w bool), updating ``y_visible`` (1, M, h, w) in place."""
    tables = _Tables(net)
    anchors = anchor_mask(coded.shape, coded.device)
    # the encoder hands the buffered rANS coder every symbol in one call: it codes its buffer
    # at flush, so the stream is the bytes one call per group and phase gives, without
    # converting the CDF tables for every call
    all_symbols: list[int] = []
    all_indexes: list[int] = []
    for k in range(len(net.groups)):
        lo, hi = sum(net.groups[:k]), sum(net.groups[: k + 1])
        for phase, where in ((True, anchors), (False, ~anchors)):
            sel = coded & where
            if not bool(sel.any()):
                continue
            scales, means = net.group_params(k, phase, y_visible, hyper_params)
            indexes = tables.gaussian.build_indexes(scales)[0][:, sel].reshape(-1)
            mu = torch.round(means)[0][:, sel]
            if encoder is not None:
                values = y_hat[0, lo:hi][:, sel]
                symbols = (values - mu).to(torch.int32).reshape(-1)
                all_symbols += symbols.tolist()
                all_indexes += indexes.int().tolist()
            else:
                symbols = decoder.decode_stream(
                    indexes.int().tolist(), tables.cdf, tables.cdf_lengths, tables.offsets
                )
                values = (
                    torch.tensor(symbols, dtype=mu.dtype, device=mu.device).reshape(mu.shape) + mu
                )
            block = y_visible[0, lo:hi]
            block[:, sel] = values
    if encoder is not None and all_symbols:
        encoder.encode_with_indexes(
            all_symbols, all_indexes, tables.cdf, tables.cdf_lengths, tables.offsets
        )
    return y_visible


def encode_region(
    net: DiscoverCodecNet,
    hyper_params: torch.Tensor,
    y_hat: torch.Tensor,
    coded: torch.Tensor,
    known: torch.Tensor | None = None,
) -> bytes:
    """rANS stream of ŷ at ``coded``; ``known`` (h, w bool) = positions the decoder already has."""
    if not bool(coded.any()):
        return b""
    visible = torch.zeros_like(y_hat) if known is None else y_hat * known.to(y_hat.dtype)
    encoder = BufferedRansEncoder()
    code_positions(net, hyper_params, visible, coded, y_hat=y_hat, encoder=encoder)
    return encoder.flush()


def decode_region(
    net: DiscoverCodecNet,
    hyper_params: torch.Tensor,
    stream: bytes,
    coded: torch.Tensor,
    y_visible: torch.Tensor,
) -> torch.Tensor:
    """Decode a stream written by :func:`encode_region` into ``y_visible`` (in place)."""
    if not bool(coded.any()):
        return y_visible
    decoder = RansDecoder()
    decoder.set_stream(stream)
    return code_positions(net, hyper_params, y_visible, coded, decoder=decoder)


def region_check(y: torch.Tensor, coded: torch.Tensor) -> bytes:
    """The check of a region's stream: of the integers of ŷ at ``coded`` (channel-major), as
    the encoder had them and as a decoder got them back."""
    values = y[0][:, coded].to(torch.int32).cpu().numpy().astype(">i4")
    return values_check(values.tobytes())


def tensor_check(x: torch.Tensor) -> bytes:
    """The check of ẑ: of its float32 values."""
    return values_check(x.detach().to(torch.float32).cpu().numpy().astype(">f4").tobytes())
