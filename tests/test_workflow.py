"""The Snakemake DAG end to end on a tiny config: tables, plots, report, determinism, resume,
config-only codecs, and failures that leave finished results untouched."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from PIL import Image

from discover.plan import snakemake_command

from .conftest import (
    ROOT,
    check_bd_table,
    check_recorded_digest,
    save_random_backbone,
    snakemake,
    tiny_config,
    tree_digest,
    write_config,
)

pytestmark = pytest.mark.slow


def test_dag_produces_tables_plots_and_report(finished_run):
    res = finished_run / "results"
    rd = pd.read_csv(res / "tables/scenes/rd.csv", dtype={"rate": str})
    assert set(rd.codec) == {"jpeg", "hevc"} and len(rd) == 6
    assert (rd.images == 4).all()
    # bpp = all bits / all pixels, from the per-image rows of the real files
    per_image = pd.read_csv(res / "metrics/scenes/jpeg/per_image.csv", dtype={"rate": str})
    for rate, grp in per_image.groupby("rate"):
        row = rd[(rd.codec == "jpeg") & (rd.rate == rate)].iloc[0]
        assert row.bpp == pytest.approx(grp.bits.sum() / grp.pixels.sum(), rel=1e-9)
        nbytes = sum(p.stat().st_size for p in (res / f"scenes/jpeg/{rate}").glob("s*/*.jpg"))
        assert grp.bits.sum() == 8 * nbytes
    # quality rises with bpp for every codec
    for _, grp in rd.groupby("codec"):
        grp = grp.sort_values("bpp")
        assert grp.psnr.is_monotonic_increasing and grp.msssim.is_monotonic_increasing
    bd = pd.read_csv(res / "tables/scenes/bd.csv")
    assert set(bd.metric) == {"psnr", "msssim"} and (bd.method == "pchip").all()
    assert (bd[bd.codec == "hevc"].bd_rate_pct == 0).all()
    # 3 points < 4: BD is reported as not computed, with the reason, never invented
    jpeg = bd[bd.codec == "jpeg"]
    assert jpeg.bd_rate_pct.isna().all()
    assert jpeg.note.str.contains("not computed: .*at least 4").all()
    for metric in ("psnr", "msssim"):
        for ext in ("png", "pdf"):
            assert (res / f"plots/scenes/rd_{metric}.{ext}").stat().st_size > 1000
    ann = yaml.safe_load((res / "scenes/annotations.json").read_text())
    assert len(ann["images"]) == 4
    # reconstructions are kept for later consumers
    assert len(list((res / "scenes/hevc/32").glob("s*/*.png"))) == 4
    for log in ("prepare_shard/scenes/s0000.log", "codec_shard/scenes/hevc/32/s0001.log"):
        assert (res / "logs" / log).exists()
    # Fig. 7: the original and one reconstruction per codec, at the rate closest to the target
    grid = Image.open(res / "plots/scenes/visual_grid.png")
    assert grid.width > 500 and grid.height > 200
    report = finished_run / "report.html"
    proc = snakemake(finished_run, finished_run / "config.yaml", "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report.stat().st_size > 10_000


@pytest.fixture(scope="module")
def bd_run(tmp_path_factory):
    """The tiny config with 4 rate points per codec (BD needs 4) and LPIPS, lower is better
    (a random AlexNet under the official file name as its backbone)."""
    from discover.metrics.perceptual import lpips_backbone_weight

    work = tmp_path_factory.mktemp("bd_run")
    (work / "cache").mkdir()
    save_random_backbone("alexnet", work / "cache" / lpips_backbone_weight("alex").filename, 1)
    cfg = tiny_config(shard_size=4, weights_cache=str(work / "cache"))
    cfg["codecs"]["jpeg"]["rates"] = [15, 30, 50, 90]
    cfg["codecs"]["hevc"]["rates"] = [44, 38, 32, 24]
    cfg["metrics"] = ["psnr", "msssim", "lpips"]
    proc = snakemake(work, write_config(work / "config.yaml", cfg))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def test_every_bd_value_is_the_bjontegaard_package_on_the_rd_table(bd_run, finished_run):
    """bd.csv recomputed from rd.csv with the bjontegaard package: JPEG against the HEVC
    anchor for PSNR, MS-SSIM and LPIPS (negated for BD-rate, in its own sign for BD-LPIPS)."""
    assert check_bd_table(bd_run, "scenes") == 3
    bd = pd.read_csv(bd_run / "results/tables/scenes/bd.csv").set_index(["codec", "metric"])
    jpeg = bd.loc["jpeg"]
    # JPEG needs more bits than HEVC intra for the same quality by every metric, and at the
    # same rate has a lower PSNR and MS-SSIM and a higher (worse) LPIPS
    assert (jpeg["bd_rate_pct"] > 0).all()
    assert jpeg.loc["psnr", "bd_metric"] < 0 and jpeg.loc["msssim", "bd_metric"] < 0
    assert jpeg.loc["lpips", "bd_metric"] > 0
    # 3 rate points: no BD number, the reason in each row
    assert check_bd_table(finished_run, "scenes") == 0


def test_same_config_gives_byte_identical_bitstreams_and_tables(finished_run, tmp_path):
    work = tmp_path / "run_b"
    work.mkdir()
    cfg = write_config(work / "config.yaml", tiny_config())
    proc = snakemake(work, cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for pattern in (
        "results/scenes/*/*/s*/*.jpg",
        "results/scenes/*/*/s*/*.hevc",
        "results/scenes/*/*/s*/*.png",
        "results/tables/**/*.csv",
        "results/metrics/**/*.csv",
        "results/scenes/annotations.json",
    ):
        a, b = tree_digest(finished_run, pattern), tree_digest(work, pattern)
        assert a and a == b, pattern


def _snapshot(run):
    return {k: v for k, v in tree_digest(run / "results").items() if not k.startswith("logs/")}


def test_corrupt_image_fails_naming_it_and_keeps_results(copy_of_run, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (64, 48), (9, 9, 9)).save(imgs / "fine.png")
    (imgs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    before = _snapshot(copy_of_run)
    cfg = yaml.safe_load((copy_of_run / "config.yaml").read_text())
    cfg["datasets"]["mine"] = {"type": "folder", "path": str(imgs)}
    write_config(copy_of_run / "config.yaml", cfg)
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml")
    assert proc.returncode != 0
    assert "corrupt.png" in proc.stderr + proc.stdout
    after = _snapshot(copy_of_run)
    assert {k: after[k] for k in before} == before
    assert not (copy_of_run / "results/mine/reference/s0000").exists()


def test_missing_encoder_binary_fails_naming_it_and_keeps_results(copy_of_run):
    before = _snapshot(copy_of_run)
    cfg = yaml.safe_load((copy_of_run / "config.yaml").read_text())
    cfg["codecs"]["avif"] = {"type": "avif", "rates": [40, 30], "encoder": "avifenc-missing"}
    write_config(copy_of_run / "config.yaml", cfg)
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml", "--keep-going")
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "avifenc-missing" in out and "libavif-bin" in out
    after = _snapshot(copy_of_run)
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda c: c.update(shardsize=3), "shardsize: unknown key"),
        (
            lambda c: c["datasets"].update(k={"type": "kodak", "path": "/nonexistent/kodak"}),
            "Kodak Lossless True Color",
        ),
    ],
)
def test_config_and_dataset_errors_fail_before_any_job(copy_of_run, mutate, needle):
    before = _snapshot(copy_of_run)
    cfg = yaml.safe_load((copy_of_run / "config.yaml").read_text())
    mutate(cfg)
    write_config(copy_of_run / "config.yaml", cfg)
    proc = snakemake(copy_of_run, copy_of_run / "config.yaml")
    assert proc.returncode != 0
    assert needle in proc.stderr + proc.stdout
    assert _snapshot(copy_of_run) == before


def test_resume_after_sigkill_recomputes_nothing_finished(finished_run, tmp_path):
    work = tmp_path / "run_c"
    work.mkdir()
    cfg = write_config(work / "config.yaml", tiny_config())
    cmd = snakemake_command(cfg, "--rerun-incomplete", workdir=work, cores=1)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    metrics = work / "results" / "metrics"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(metrics.glob("scenes/*/*/*.csv"))) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Jobs that were running when killed are marked incomplete by Snakemake (their outputs may
    # exist); every other output is finished and must not be recomputed.
    incomplete = {
        base64.urlsafe_b64decode(p.name).decode()
        for p in (work / ".snakemake" / "incomplete").glob("*")
    }
    done = {
        p: p.stat().st_mtime_ns
        for p in metrics.glob("scenes/*/*/*.csv")
        if str(p.relative_to(work)) not in incomplete and str(p) not in incomplete
    }
    assert 2 <= len(done) < 12, "the run was not interrupted midway"
    assert not (work / "results/tables/scenes/rd.csv").exists()
    unlock = snakemake(work, cfg, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = snakemake(work, cfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for path, mtime in done.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"
    for pattern in (
        "results/tables/**/*.csv",
        "results/metrics/**/*.csv",
        "results/scenes/*/*/s*/*.hevc",
        "results/scenes/*/*/s*/*.jpg",
    ):
        assert tree_digest(work, pattern) == tree_digest(finished_run, pattern), pattern


def test_configfile_replaces_the_embedded_default(tmp_path):
    # The working directory holds the embedded default config.yaml (as the repository root
    # does); --configfile must replace it, not merge its datasets and codecs into the run.
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    mine = write_config(tmp_path / "mine.yaml", tiny_config())
    proc = snakemake(tmp_path, mine, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1]
    assert re.search(r"^codec_shard\s+12$", stats, re.M), stats  # 2 codecs x 3 rates x 2 shards
    assert re.search(r"^prepare_shard\s+2$", stats, re.M), stats


def test_visual_grid_picks_each_codec_at_the_rate_closest_to_the_target(finished_run, tmp_path):
    from discover.config import load_config
    from discover.errors import DiscoverError
    from discover.plan import Plan
    from discover.stages.tables import run_visual_grid

    res = finished_run / "results"
    with contextlib.chdir(finished_run):
        rows = Plan(load_config("config.yaml")).visual_grid_rows("scenes")
    assert set(rows) == {"jpeg", "hevc"}
    image = "val_000001"
    bpp = {
        (row, rate): pd.read_csv(finished_run / csv, dtype={"id": str}).set_index("id").bpp[image]
        for row, rates in rows.items()
        for rate, (csv, _) in rates.items()
    }
    rows = {
        r: {k: [finished_run / p for p in v] for k, v in rates.items()} for r, rates in rows.items()
    }
    target = 0.5
    out = run_visual_grid(
        "scenes",
        rows,
        res / "scenes/reference/s0000",
        res / "tables/scenes/rd.csv",
        tmp_path / "grid.png",
        image=image,
        bpp=target,
    )
    for row, picked in out["rows"].items():
        best = min((abs(v - target), rate) for (r, rate), v in bpp.items() if r == row)[1]
        assert picked["rate"] == best and picked["bpp"] == bpp[(row, best)]
    assert Image.open(tmp_path / "grid.png").size[0] > 500
    with pytest.raises(DiscoverError, match="val_999999"):
        run_visual_grid(
            "scenes",
            rows,
            res / "scenes/reference/s0000",
            res / "tables/scenes/rd.csv",
            tmp_path / "bad.png",
            image="val_999999",
        )
    assert not (tmp_path / "bad.png").exists()


def test_a_codec_runs_on_its_datasets_and_job_counts_match_the_dry_run(tmp_path):
    """codecs.<c>.datasets restricts a codec (DISCOVER here) to some datasets: no rows, encodes
    or masks elsewhere; `discover info`'s job counts equal Snakemake's plan of the same config."""
    import yaml

    from discover.config import validate_config
    from discover.errors import ConfigError
    from discover.plan import Plan

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["codecs"]["discover-mini"]["datasets"] = ["objects"]
    cfg["codecs"]["jpeg"]["datasets"] = ["scenes", "photos"]
    plan = Plan(validate_config(cfg), basedir=ROOT)
    assert not [r for r in plan.table_rows("scenes") if r.startswith("discover-mini")]
    assert "jpeg" not in plan.table_rows("objects")
    assert {"discover-mini@human", "discover-mini@classification"} <= set(
        plan.table_rows("objects")
    )
    assert plan.grounded_tasks("discover-mini", "scenes") == []
    config = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, config, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = dict(
        (m.group(1), int(m.group(2)))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout.split("Job stats:")[1], re.M)
    )
    counts = {k: v for k, v in plan.job_count().items() if v}
    assert stats == counts
    cfg["codecs"]["hevc"]["datasets"] = ["scenes"]
    with pytest.raises(ConfigError, match="codecs.hevc.datasets: 'hevc' is the BD anchor"):
        validate_config(cfg)
    cfg["codecs"]["hevc"]["datasets"] = ["kodak"]
    with pytest.raises(ConfigError, match="codecs.hevc.datasets: 'kodak' is not a configured"):
        validate_config(cfg)


def test_light_rule_jobs_do_not_import_pytorch():
    """Tables, plots and aggregation start in a fraction of a second: importing the stages, the
    plots or the plan must not pull in PyTorch (the codec registry loads its modules on use)."""
    code = (
        "import sys; import discover.plots, discover.plan; "
        "import discover.stages.datasets, discover.stages.perception, discover.stages.tables; "
        "import discover.stages.tasks, discover.stages.training; "
        "print(sorted(m for m in ('torch', 'compressai', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
    from discover.codecs import available

    assert {"jpeg", "discover", "compressai"} <= set(available())


def test_outputs_equal_those_recorded_before_the_code_moved(finished_run):
    """Streams, reconstructions, metrics and tables byte for byte as the commit before the
    re-homing of the package wrote them (tests/data/recorded_digests.json)."""
    check_recorded_digest(finished_run, "finished_run")
