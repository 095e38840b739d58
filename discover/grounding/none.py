"""The "w/o disentanglement" ablation: the whole image is one task region."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from discover.grounding.base import Detections, Grounder, check_image
from discover.grounding.registry import register_grounder

WHOLE_IMAGE_LABEL = "image"


@register_grounder("none")
class WholeImageGrounder(Grounder):
    """One box covering the image, label ``"image"``, score 1, whatever the labels."""

    defaults = {}

    def ground(
        self, image: np.ndarray, labels: Sequence[str] | None, **context: object
    ) -> Detections:
        height, width = check_image(image).shape[:2]
        return Detections([[0.0, 0.0, float(width), float(height)]], [WHOLE_IMAGE_LABEL], [1.0])
