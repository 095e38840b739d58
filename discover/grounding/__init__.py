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

from discover.registry import lazy_exports

# name -> the module that defines it; loaded on first use, so that the plan (which asks the
# registry for backends and the default model) imports without PyTorch
_EXPORTS = {
    "GroundingError": "discover.errors",
    "DEFAULT_MODEL": "discover.grounding.base",
    "Detections": "discover.grounding.base",
    "Grounder": "discover.grounding.base",
    "label_key": "discover.grounding.base",
    "Detector": "discover.grounding.detector",
    "TorchvisionDetector": "discover.grounding.detector",
    "build_detector": "discover.grounding.detector",
    "chunk_labels": "discover.grounding.grounding_dino",
    "label_prompt": "discover.grounding.grounding_dino",
    "merge_detections": "discover.grounding.grounding_dino",
    "decode_mask_record": "discover.grounding.masks",
    "grounding_record": "discover.grounding.masks",
    "record_detections": "discover.grounding.masks",
    "available": "discover.grounding.registry",
    "get_grounder": "discover.grounding.registry",
    "register_grounder": "discover.grounding.registry",
    "resolve": "discover.grounding.registry",
    "ground_images": "discover.grounding.shard",
    "read_grounding": "discover.grounding.shard",
    "write_grounding": "discover.grounding.shard",
    "boxes_to_latent_mask": "discover.latent_masks",
    "latent_grid": "discover.latent_masks",
    "masked_fraction": "discover.latent_masks",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
