"""Open-set grounding with Grounding DINO (paper §3.1.2; IDEA-Research/grounding-dino-tiny).

Task label lists hold 100+ labels, more than the model's text input (256 tokens) takes, so the
labels are queried in chunks: each chunk is a prompt ``"label a. label b. ..."`` packed greedily
up to ``max_text_tokens`` tokens (special tokens included). Each chunk's boxes come from the
processor's ``post_process_grounded_object_detection``; its phrases are mapped back to the
chunk's labels, and the chunks' boxes are merged by per-label NMS (optionally followed by a
class-agnostic pass).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms, nms

from discover.errors import ConfigError, GroundingError
from discover.grounding.base import (  # noqa: F401  (DEFAULT_MODEL re-exported)
    DEFAULT_MODEL,
    Detections,
    Grounder,
    check_image,
    label_key,
)
from discover.grounding.registry import register_grounder
from discover.weights import resolve_pretrained_dir


def label_prompt(labels: Sequence[str]) -> str:
    """Grounding DINO's text input for ``labels``: ``"cat. traffic light."``."""
    return ". ".join(labels) + "."


def chunk_labels(
    labels: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int
) -> list[list[str]]:
    """Split ``labels`` (in order) into consecutive chunks whose :func:`label_prompt` has at most
    ``max_tokens`` tokens by ``count_tokens``; each chunk takes as many labels as fit."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for label in labels:
        if count_tokens(label_prompt([*current, label])) <= max_tokens:
            current.append(label)
            continue
        if count_tokens(label_prompt([label])) > max_tokens:
            raise GroundingError(
                f"label {label!r} alone is longer than max_text_tokens={max_tokens} tokens"
            )
        chunks.append(current)
        current = [label]
    if current:
        chunks.append(current)
    return chunks


@dataclass(frozen=True)
class LabelChunk:
    """One query: its labels, prompt, each label as the tokenizer decodes it (the form the
    returned phrases take) and, where the tokenizer gives offsets, each label's token positions
    in the unpadded prompt of ``length`` tokens."""

    labels: tuple[str, ...]
    prompt: str
    decoded: tuple[str, ...]
    spans: tuple[tuple[int, ...], ...] | None
    length: int


def phrase_pieces(phrase: str, special_tokens: Sequence[str] = ()) -> list[str]:
    """A returned phrase without special tokens, split at the label separator ``.``."""
    for token in special_tokens:
        phrase = phrase.replace(token, " ")
    pieces = (" ".join(piece.split()) for piece in phrase.split("."))
    return [piece for piece in pieces if piece]


def match_phrase(
    pieces: Sequence[str], decoded: Sequence[str], label_scores: Sequence[float] | None = None
) -> int | None:
    """Index of the chunk label a phrase stands for, or None if it names none.

    A label equal to a piece of the phrase wins over one that merely contains, or is contained
    in, a piece. When several labels qualify (the phrase spans labels), the one whose tokens
    scored highest for this box wins (``label_scores``), else the first in the chunk.
    """
    exact = [i for i, label in enumerate(decoded) if label in pieces]
    candidates = exact or [
        i
        for i, label in enumerate(decoded)
        if any(piece in label or label in piece for piece in pieces)
    ]
    if not candidates:
        return None
    if label_scores is None:
        return candidates[0]
    return max(candidates, key=lambda i: (label_scores[i], -i))


def merge_detections(
    parts: Sequence[Detections], iou: float = 0.5, agnostic: bool = False
) -> Detections:
    """Concatenate ``parts`` and suppress duplicates: NMS per label, then (``agnostic``) NMS
    across labels. The result is ordered by score, then label, then box."""
    merged = Detections(
        [box for part in parts for box in part.boxes],
        [label for part in parts for label in part.labels],
        [score for part in parts for score in part.scores],
    )
    if not len(merged):
        return merged
    boxes = torch.as_tensor(merged.xyxy(), dtype=torch.float64)
    scores = torch.as_tensor(merged.scores, dtype=torch.float64)
    names = sorted(set(merged.labels))
    label_ids = torch.as_tensor([names.index(label) for label in merged.labels])
    keep = batched_nms(boxes, scores, label_ids, iou)
    if agnostic:
        keep = keep[nms(boxes[keep], scores[keep], iou)]
    order = sorted(
        keep.tolist(), key=lambda i: (-merged.scores[i], merged.labels[i], merged.boxes[i])
    )
    return merged.select(order)


@register_grounder("grounding-dino")
class GroundingDinoGrounder(Grounder):
    """Grounding DINO through ``transformers``, loaded from a local directory or a Hub id
    present in the weights cache (compute nodes never download)."""

    defaults = {
        "model": DEFAULT_MODEL,
        "box_threshold": 0.35,
        "text_threshold": 0.25,
        "max_text_tokens": 200,
        "nms_iou": 0.5,
        "agnostic_nms": False,
        "chunk_batch": 1,
        "device": "cpu",
    }

    def __init__(
        self,
        cfg: Mapping[str, Any] | None = None,
        *,
        weights_cache: str | os.PathLike | None = None,
    ):
        super().__init__(cfg, weights_cache=weights_cache)
        self.box_threshold = self._number("box_threshold", 0.0, 1.0)
        self.text_threshold = self._number("text_threshold", 0.0, 1.0)
        self.nms_iou = self._number("nms_iou", 0.0, 1.0)
        self.agnostic_nms = bool(self.cfg["agnostic_nms"])
        self.chunk_batch = int(self._number("chunk_batch", 1))
        self.max_text_tokens = int(self._number("max_text_tokens", 3))
        self.device = torch.device(str(self.cfg["device"]))

        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        directory = resolve_pretrained_dir(self.cfg["model"], weights_cache)
        try:
            self.processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
            model = GroundingDinoForObjectDetection.from_pretrained(
                directory, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise GroundingError(f"cannot load Grounding DINO from {directory}: {exc}") from exc
        self.model = model.to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        limit = int(self.model.config.max_text_len)
        if self.max_text_tokens > limit:
            raise ConfigError(
                f"config key semantics.grounding.grounding-dino.max_text_tokens="
                f"{self.max_text_tokens} exceeds the model's text length {limit}"
            )
        self._chunk_cache: tuple[tuple[str, ...], list[LabelChunk]] | None = None

    # -- label chunks ----------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model sees it, special tokens included."""
        return len(self.tokenizer(text)["input_ids"])

    def chunks(self, prompt_labels: Sequence[str]) -> list[LabelChunk]:
        """The queries for (normalised, distinct) ``prompt_labels``; cached, because every
        image of a task asks for the same labels."""
        key = tuple(prompt_labels)
        if self._chunk_cache is None or self._chunk_cache[0] != key:
            groups = chunk_labels(key, self.count_tokens, self.max_text_tokens)
            self._chunk_cache = (key, [self._label_chunk(group) for group in groups])
        return self._chunk_cache[1]

    def _label_chunk(self, labels: Sequence[str]) -> LabelChunk:
        prompt = label_prompt(labels)
        decoded = tuple(
            " ".join(
                self.tokenizer.decode(self.tokenizer(label, add_special_tokens=False)["input_ids"])
                .replace(".", " ")
                .split()
            )
            for label in labels
        )
        spans = None
        if getattr(self.tokenizer, "is_fast", False):
            offsets = self.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
            spans_list, start = [], 0
            for label in labels:
                end = start + len(label)
                spans_list.append(
                    tuple(
                        j for j, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end
                    )
                )
                start = end + 2  # ". "
            spans = tuple(spans_list)
        return LabelChunk(tuple(labels), prompt, decoded, spans, self.count_tokens(prompt))

    # -- grounding -------------------------------------------------------------------------
    def ground(self, image: np.ndarray, labels: Sequence[str] | None, **context: Any) -> Detections:
        image = check_image(image)
        if labels is None:
            raise GroundingError("the grounding-dino backend needs the task's label list")
        original: dict[str, str] = {}
        for label in labels:
            if label_key(label):
                original.setdefault(label_key(label), str(label))
        chunks = self.chunks(list(original))
        size = image.shape[:2]
        # a PIL image leaves the processor no channel order to guess (a tiny array is ambiguous)
        pil_image = Image.fromarray(image)
        parts = []
        for start in range(0, len(chunks), self.chunk_batch):
            batch = chunks[start : start + self.chunk_batch]
            inputs = self.processor(
                images=[pil_image] * len(batch),
                text=[chunk.prompt for chunk in batch],
                return_tensors="pt",
                padding=True,
            ).to(self.device)
            with torch.inference_mode():
                outputs = self.model(**inputs)
            results = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.box_threshold,
                text_threshold=self.text_threshold,
                target_sizes=[size] * len(batch),
            )
            probs = outputs.logits.sigmoid().float().cpu()
            width = inputs["input_ids"].shape[1]
            for i, (chunk, result) in enumerate(zip(batch, results, strict=True)):
                parts.append(self._chunk_detections(chunk, result, probs[i], width, size, original))
        return merge_detections(parts, self.nms_iou, self.agnostic_nms)

    def _chunk_detections(
        self,
        chunk: LabelChunk,
        result: Mapping[str, Any],
        probs: torch.Tensor,
        padded_width: int,
        size: tuple[int, int],
        original: Mapping[str, str],
    ) -> Detections:
        phrases = result["text_labels"] if "text_labels" in result else result["labels"]
        scores = result["scores"].tolist()
        # The queries post-processing kept, in its order: same rule as transformers applies, so
        # each box can be traced back to its query's per-token probabilities.
        kept = torch.nonzero(probs.max(-1).values > self.box_threshold).flatten().tolist()
        spans = chunk.spans if len(kept) == len(scores) else None
        if spans is not None and self.tokenizer.padding_side == "left":
            shift = padded_width - chunk.length  # padding came first
            spans = tuple(tuple(j + shift for j in span) for span in spans)
        boxes, labels, kept_scores = [], [], []
        for j, (box, phrase, score) in enumerate(
            zip(result["boxes"].tolist(), phrases, scores, strict=True)
        ):
            label_scores = None
            if spans is not None:
                query = probs[kept[j]]
                label_scores = [float(query[list(s)].max()) if s else 0.0 for s in spans]
            pieces = phrase_pieces(phrase, self.tokenizer.all_special_tokens)
            index = match_phrase(pieces, chunk.decoded, label_scores)
            if index is None:
                continue  # the phrase names none of the labels (e.g. only separators)
            boxes.append(box)
            labels.append(original[chunk.labels[index]])
            kept_scores.append(score)
        return Detections.from_xyxy(boxes, labels, kept_scores, size)


def save_tiny_model(directory: str | os.PathLike, words: Sequence[str] = ()) -> Path:
    """Save a ~100k-parameter, randomly initialised Grounding DINO (Swin + 1-layer BERT) and its
    processor into ``directory``, laid out like a downloaded snapshot.

    Its boxes mean nothing: it exercises the real loading, chunking and post-processing code
    offline (tests, benchmarks of the code path). ``words`` join the tokenizer's vocabulary
    (characters and ``##`` pieces are always there)."""
    import string

    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "-", *chars]
    vocab += [f"##{c}" for c in chars] + [w for w in words if w not in vocab]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # from the directory: BertTokenizer(vocab_file=...) alone silently maps everything to [UNK]
    tokenizer = BertTokenizer.from_pretrained(directory)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=16,
            depths=[1, 1],
            num_heads=[1, 2],
            window_size=4,
            image_size=128,
            out_features=["stage1", "stage2"],
        ),
        text_config=BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,  # the model needs at least two
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=30,
        num_feature_levels=2,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GroundingDinoForObjectDetection(config).save_pretrained(directory)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 160})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        directory
    )
    return directory
