"""Published rate-distortion points: results reported in a paper, imported from a CSV or JSON
file with their citation. They appear in RD/BD tables and plots marked "published" (dashed
curves), never mixed up with what this pipeline measured, and they have no encoder.

File format: CSV with columns ``dataset``, ``bpp`` and any metric columns (``psnr``,
``msssim``, ...), one row per rate point; or a JSON list of objects with the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError


@register_codec("published")
class PublishedCurve(Codec):
    measured = False

    def _read(self) -> pd.DataFrame:
        path = Path(self.cfg["file"]).expanduser()
        if not path.is_file():
            raise CodecError(f"codec {self.name!r}: published points file {path} does not exist")
        try:
            if path.suffix.lower() == ".json":
                df = pd.DataFrame(json.loads(path.read_text()))
            else:
                df = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise CodecError(f"codec {self.name!r}: cannot read {path}: {exc}") from exc
        missing = {"dataset", "bpp"} - set(df.columns)
        if missing:
            raise CodecError(
                f"codec {self.name!r}: {path} lacks column(s) {', '.join(sorted(missing))}"
            )
        return df

    def points(self, dataset: str, metrics: Sequence[str]) -> pd.DataFrame:
        """RD rows of ``dataset`` in the layout of measured RD tables (bpp ascending)."""
        df = self._read()
        df = df[df["dataset"].astype(str) == dataset].copy()
        if df.empty:
            raise CodecError(
                f"codec {self.name!r}: {self.cfg['file']} has no points for dataset {dataset!r}"
            )
        df = df.sort_values("bpp", kind="stable").reset_index(drop=True)
        out = pd.DataFrame(
            {
                "dataset": dataset,
                "codec": self.name,
                "label": self.label,
                "rate": [f"p{i + 1}" for i in range(len(df))],
                "images": np.nan,
                "bits": np.nan,
                "pixels": np.nan,
                "bpp": df["bpp"].astype(float),
                "bpp_mean_per_image": np.nan,
            }
        )
        for m in metrics:
            out[m] = df[m].astype(float) if m in df.columns else np.nan
        out["published"] = True
        out["source"] = self.cfg["source"]
        return out

    def encode(self, image, rate, path):
        raise CodecError(f"codec {self.name!r} is a published curve: it has no encoder")

    def decode(self, path, shape, rate):
        raise CodecError(f"codec {self.name!r} is a published curve: it has no decoder")
