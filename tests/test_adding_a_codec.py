"""The three ways of docs/adding-a-codec.md, each run through the DAG from its example file."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import ROOT, snakemake, write_config

pytestmark = pytest.mark.slow
EXAMPLES = ROOT / "docs" / "examples"


def _add_codecs(run, codecs: dict, **top) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["codecs"].update(codecs)
    cfg.update(top)
    write_config(run / "config.yaml", cfg)


def test_command_template_codec(copy_of_run):
    _add_codecs(copy_of_run, yaml.safe_load((EXAMPLES / "command_codec.yaml").read_text()))
    dry = snakemake(copy_of_run, copy_of_run / "config.yaml", "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    # only the new codec's jobs and the tables that include it are scheduled
    assert "prepare_shard" not in dry.stdout
    assert "codec_shard" in dry.stdout and "aggregate_rd" in dry.stdout
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rd = pd.read_csv(copy_of_run / "results/tables/scenes/rd.csv")
    assert (rd.codec == "cwebp").sum() == 4
    streams = list((copy_of_run / "results/scenes/cwebp/40").glob("s*/*.webp"))
    assert len(streams) == 4 and all(p.read_bytes()[:4] == b"RIFF" for p in streams)


@pytest.fixture
def installed_plugin():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(EXAMPLES / "plugin")],
        check=True,
        capture_output=True,
    )
    yield
    subprocess.run(
        [*pip, "uninstall", "-y", "discover-example-codec"], check=True, capture_output=True
    )


def test_python_class_by_module_path_and_by_entry_point(copy_of_run, installed_plugin):
    codecs = yaml.safe_load((EXAMPLES / "python_codec.yaml").read_text())
    entry = codecs["palette-by-path"]
    entry["pythonpath"] = [str(ROOT / p) for p in entry["pythonpath"]]
    _add_codecs(copy_of_run, codecs)
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "discover.cli",
            "check-codec",
            "palette",
            "--config",
            str(copy_of_run / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=copy_of_run,
    )
    assert listed.returncode == 0 and "palette: ok" in listed.stdout, listed.stderr
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rd = pd.read_csv(copy_of_run / "results/tables/scenes/rd.csv")
    for name in ("palette", "palette-by-path"):
        rows = rd[rd.codec == name].sort_values("bpp")
        assert len(rows) == 4 and rows.psnr.is_monotonic_increasing
    # both ways run the same class: identical bitstreams
    a = sorted((copy_of_run / "results/scenes/palette/16").glob("s*/*.png"))
    b = sorted((copy_of_run / "results/scenes/palette-by-path/16").glob("s*/*.png"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_published_points(copy_of_run):
    codecs = yaml.safe_load((EXAMPLES / "published_codec.yaml").read_text())
    codecs["example-published"]["file"] = str(ROOT / codecs["example-published"]["file"])
    _add_codecs(copy_of_run, codecs, anchor="example-published")
    dry = snakemake(copy_of_run, copy_of_run / "config.yaml", "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "codec_shard" not in dry.stdout and "import_published" in dry.stdout
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rd = pd.read_csv(copy_of_run / "results/tables/scenes/rd.csv")
    pub = rd[rd.codec == "example-published"]
    assert len(pub) == 4 and pub.published.all() and pub.images.isna().all()
    assert pub.source.str.startswith("Doe et al.").all()
    assert not rd[rd.codec != "example-published"].published.any()
    bd = pd.read_csv(copy_of_run / "results/tables/scenes/bd.csv")
    assert (bd.anchor == "example-published").all()
    assert bd[bd.codec == "example-published"].published.all()
    assert not bd[bd.codec == "jpeg"].published.any()
