"""Open-set grounding: per image, keep the task labels present in it and box them; the boxes
become the binary latent mask that splits the DISCOVER bitstream (paper §3.1.2 and §3.2).

Backends (one module each, registered with ``@register_grounder(name)``):

- ``grounding-dino``: Grounding DINO via ``transformers``; 100+ labels are queried in chunks
  that fit its text input, and the chunks' boxes merged by per-label NMS.
- ``detector``: a closed-set torchvision detector, its boxes kept where the category is a label.
- ``gt``: the oracle, the image's COCO annotations whose category is a label.
- ``none``: the "w/o disentanglement" ablation, one box covering the image.

Config (the ``semantics.grounding`` section; a backend reads only its own sub-section)::

    semantics:
      grounding:
        backend: grounding-dino | detector | gt | none
        stride: 16                      # latent stride of the mask (DISCOVER: 16)
        grounding-dino:
          model: IDEA-Research/grounding-dino-tiny   # Hub id in the weights cache, or a dir
          box_threshold: 0.35
          text_threshold: 0.25
          max_text_tokens: 200          # per chunk, special tokens included (model max 256)
          nms_iou: 0.5
          agnostic_nms: false           # true: also suppress overlaps across labels
          chunk_batch: 1                # chunks run through the model together
          device: cpu
        detector:
          checkpoint: path/to/model.pt  # + model.json sidecar (see discover.grounding.detector)
          score_threshold: 0.5
          device: cpu

Typical use::

    grounder = get_grounder(config["semantics"]["grounding"], config.get("weights_cache"))
    records = ground_images(grounder, [(image_id, path), ...], labels, stride=16)
    write_grounding(out_path, records, grounder.provenance())
"""

from discover.errors import GroundingError
from discover.grounding import (  # noqa: F401  (registration)
    detector,
    grounding_dino,
    gt,
    none,
)
from discover.grounding.base import Detections, Grounder, label_key
from discover.grounding.detector import Detector, TorchvisionDetector, build_detector
from discover.grounding.grounding_dino import chunk_labels, label_prompt, merge_detections
from discover.grounding.masks import decode_mask_record, grounding_record, record_detections
from discover.grounding.registry import available, get_grounder, register_grounder, resolve
from discover.grounding.shard import ground_images, read_grounding, write_grounding
from discover.latent_masks import boxes_to_latent_mask, latent_grid, masked_fraction

__all__ = [
    "Detections",
    "Detector",
    "Grounder",
    "GroundingError",
    "TorchvisionDetector",
    "available",
    "boxes_to_latent_mask",
    "build_detector",
    "chunk_labels",
    "decode_mask_record",
    "get_grounder",
    "ground_images",
    "grounding_record",
    "label_prompt",
    "latent_grid",
    "masked_fraction",
    "merge_detections",
    "label_key",
    "read_grounding",
    "record_detections",
    "register_grounder",
    "resolve",
    "write_grounding",
]
