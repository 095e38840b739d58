"""DISCOVER in the DAG (encode per shard, decode per consumer, table rows), the CLI, and the
train rules of the mini model."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from discover.cli import main as cli
from discover.discover_codec.bitstream import Container
from discover.weights import sha256

from .conftest import ROOT, check_recorded_digest, snakemake, tiny_config, write_config

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def discover_config(**codec) -> dict:
    cfg = tiny_config(shard_size=4)  # one shard: one encode and one decode job per rate
    cfg["codecs"] = {
        "jpeg": {"type": "jpeg", "rates": [15, 35, 60, 90]},
        "discover-mini": {
            "type": "discover",
            "trained": "discover-mini",
            "rates": [1, 2, 4, 8],
            "tasks": {"detection": {"mask": "gt"}},
            **codec,
        },
    }
    cfg["anchor"] = "jpeg"
    cfg["discover_training"] = copy.deepcopy(DEFAULT["discover_training"])
    cfg["training_data"] = copy.deepcopy(DEFAULT["training_data"])  # the pools it names
    return cfg


# two tasks masked by the same (gt) boxes: the second decodes like the first
TWO_TASKS = {"detection": {"mask": "gt"}, "instance_segmentation": {"mask": "gt"}}


@pytest.fixture(scope="module")
def discover_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("discover_run")
    config = write_config(work / "config.yaml", discover_config(tasks=TWO_TASKS))
    dry = snakemake(work, config, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    stats = dry.stdout.split("Job stats:")[1].split("Reasons:")[0]
    assert "train_discover" not in stats  # the committed weights serve the demo
    proc = snakemake(work, config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def rules_writing_weights() -> set[str]:
    """The rules of rules/training.smk with an output under the trained weights' directory."""
    text = (ROOT / "rules" / "training.smk").read_text()
    blocks = re.split(r"^rule (\w+):", text, flags=re.M)[1:]
    return {
        name
        for name, body in zip(blocks[::2], blocks[1::2], strict=True)
        if re.search(r"output:(?:(?!\n    \w+:\n).)*PLAN\.weights_dir", body, re.S)
    }


def test_missing_metadata_after_a_run_is_only_the_committed_weights(discover_run):
    """After a run, `snakemake -n` says some jobs have missing provenance/metadata: it must be
    the rules that made the committed weights/ files (made in another checkout), which
    docs/dag.md names and explains; any other rule there would be a real gap."""
    dry = snakemake(discover_run, discover_run / "config.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    said = re.search(r"Rules with missing metadata: (.*)", dry.stdout + dry.stderr)
    assert said, dry.stdout[-2000:]
    missing = set(said.group(1).split())
    writing = rules_writing_weights()
    assert {"train_discover", "train_discover_vae", "discover_model_index"} <= writing
    assert missing and missing <= writing, missing - writing
    docs = (ROOT / "docs" / "dag.md").read_text()
    explained = docs.split('## "Jobs have missing provenance/metadata"')[1].split("\n## ")[0]
    for rule in writing - {"train_all"}:
        assert f"`{rule}`" in explained, rule


def test_one_encode_serves_every_consumer_and_each_counts_its_own_bytes(discover_run):
    out = discover_run / "results"
    rd = pd.read_csv(out / "tables/scenes/rd.csv", dtype={"rate": str})
    rows = rd[rd.codec.str.startswith("discover-mini")]
    assert set(rows.codec) == {
        "discover-mini@human",
        "discover-mini@detection",
        "discover-mini@instance_segmentation",
    }
    assert (rows.groupby("codec").size() == 4).all()
    human = rows[rows.codec.str.endswith("human")].set_index("rate")
    task = rows[rows.codec.str.endswith("detection")].set_index("rate")
    assert (task.bpp < human.bpp).all()
    assert human.loc["1", "bpp"] > human.loc["8", "bpp"]  # λ_R weighs rate: fewer bits
    metrics = pd.read_csv(
        out / "metrics/scenes/discover-mini@detection/1/s0000.csv", dtype={"id": str}
    )
    for row in metrics.itertuples():
        cut = out / "scenes/discover-mini@detection/1/s0000" / f"{row.id}.dsc"
        assert row.bits == 8 * cut.stat().st_size
        assert Container.from_bytes(cut.read_bytes()).consumers == ["detection"]
        full = Container.from_bytes(
            (out / "scenes/discover-mini/1/s0000" / f"{row.id}.dsc").read_bytes()
        )
        assert full.consumers == ["detection", "instance_segmentation", "human"]
        assert full.part("detection").mask.any()  # gt boxes of the scene's objects
    bd = pd.read_csv(out / "tables/scenes/bd.csv")
    assert "discover-mini@human" in set(bd.codec)


def test_every_row_counts_the_bytes_its_consumer_receives_over_the_reference_pixels(
    discover_run,
):
    """bpp = all bits / all pixels: recomputed from the files on disk for every row of rd.csv,
    DISCOVER's ``@human`` included: bits = 8 x the bytes the row's consumer receives (a
    DISCOVER task's cut: header, its part and ẑ; the human row: the whole container; another
    codec: its encoded files), pixels = the sum of W x H of the reference images."""
    out = discover_run / "results"
    rd = pd.read_csv(out / "tables/scenes/rd.csv", dtype={"rate": str})
    references = sorted((out / "scenes/reference").glob("s*/*.png"))
    pixels = 0
    for png in references:
        with Image.open(png) as im:
            pixels += im.width * im.height
    assert len(rd) == 4 + 3 * 4  # jpeg and the three DISCOVER rows at 4 rates each
    for row in rd.itertuples():
        codec, _, consumer = row.codec.partition("@")
        if consumer:  # what the decode job received, cut out of the full container
            files = sorted((out / f"scenes/{row.codec}/{row.rate}").glob("s*/*.dsc"))
            for cut in files:
                c = Container.from_bytes(cut.read_bytes())
                full = out / f"scenes/{codec}/{row.rate}/{cut.parent.name}/{cut.name}"
                if consumer == "human":
                    assert cut.read_bytes() == full.read_bytes()
                else:
                    assert c.consumers == [consumer] and c.rest is None
                    assert cut.stat().st_size < full.stat().st_size
        else:
            files = sorted((out / f"scenes/{codec}/{row.rate}").glob("s*/*.jpg"))
        assert len(files) == len(references), row.codec
        bits = 8 * sum(f.stat().st_size for f in files)
        assert (row.bits, row.pixels) == (bits, pixels), (row.codec, row.rate)
        assert row.bpp == pytest.approx(bits / pixels, rel=1e-9)  # rd.csv: 10 digits


def test_tasks_with_the_same_boxes_share_one_part_and_the_full_stream_pays_it_once(
    discover_run,
):
    out = discover_run / "results"
    for dsc in sorted((out / "scenes/discover-mini/1").glob("s*/*.dsc")):
        full = Container.from_bytes(dsc.read_bytes())
        (part,) = full.parts  # detection and instance_segmentation: the same gt boxes
        assert part.names == ("detection", "instance_segmentation")
        # the object region is in the full stream once, and both tasks receive it
        assert len(part.stream) > 8 and full.to_bytes().count(part.stream) == 1
        for task in part.names:
            assert part.stream in full.for_consumer(task).to_bytes()


def test_a_task_receiving_the_same_bits_takes_the_first_tasks_decode(discover_run):
    """instance_segmentation's cut equals detection's but for the task's name: its decode job
    takes detection's images (the same bytes a decode gives) and still counts its own bits."""
    out = discover_run / "results"
    for rate in ("1", "8"):
        det = out / f"scenes/discover-mini@detection/{rate}/s0000"
        seg = out / f"scenes/discover-mini@instance_segmentation/{rate}/s0000"
        pngs = sorted(p.name for p in det.glob("*.png"))
        assert pngs and pngs == sorted(p.name for p in seg.glob("*.png"))
        for name in pngs:
            assert (det / name).read_bytes() == (seg / name).read_bytes()
            a = Container.from_bytes((det / name.replace(".png", ".dsc")).read_bytes())
            b = Container.from_bytes((seg / name.replace(".png", ".dsc")).read_bytes())
            assert a.decodes_like(b) and a.consumers != b.consumers
        log = out / f"logs/discover_decode/scenes/discover-mini@instance_segmentation/{rate}"
        assert (
            f"{len(pngs)} of {len(pngs)} images decode like detection's"
            in (log / "s0000.log").read_text()
        )
        bits = pd.read_csv(
            out / f"metrics/scenes/discover-mini@instance_segmentation/{rate}/s0000.csv"
        )
        assert (bits.bits == [8 * (seg / f"{i}.dsc").stat().st_size for i in bits.id]).all()
    # other boxes: other bits, decoded anew
    full = Container.from_bytes((out / "scenes/discover-mini/1/s0000/val_000000.dsc").read_bytes())
    cut = full.for_consumer("detection")
    other = replace(cut, parts=[replace(cut.parts[0], mask=~cut.parts[0].mask)])
    assert cut.decodes_like(full.for_consumer("instance_segmentation"))
    assert not cut.decodes_like(other) and not cut.decodes_like(full)
    # the plan names the first task for every later task decoded with the same settings; the
    # decode job compares the bits per image
    from discover.config import validate_config
    from discover.plan import Plan

    cfg = discover_config(tasks={"detection": {"mask": "gt"}, "classification": {"mask": "none"}})
    plan = Plan(validate_config(cfg), basedir=ROOT)
    assert plan.decode_reuse("discover-mini", "scenes", "classification") == "detection"
    assert plan.decode_reuse("discover-mini", "scenes", "detection") is None
    assert plan.decode_reuse("discover-mini", "scenes", "human") is None
    # DISCOVER with composition (the embedded default's model), 8 steps for either task
    cfg = copy.deepcopy(DEFAULT)
    cfg["codecs"]["discover"]["datasets"] = ["scenes"]
    plan = Plan(validate_config(cfg), basedir=ROOT)
    assert plan.decode_reuse("discover", "scenes", "instance_segmentation") == "detection"


def test_datasets_without_annotations_get_the_human_row_only():
    from discover.config import validate_config
    from discover.plan import Plan

    cfg = discover_config()
    cfg["datasets"]["photos"] = {"type": "photos", "max_images": 2}
    plan = Plan(validate_config(cfg), basedir=ROOT)
    assert plan.table_rows("photos") == ["jpeg", "discover-mini@human"]
    assert plan.table_rows("scenes") == ["jpeg", "discover-mini@human", "discover-mini@detection"]
    counts = plan.job_count()
    assert counts["discover_encode"] == 4 * (1 + 1)  # rates x shards (scenes 1, photos 1)
    assert counts["discover_decode"] == 4 * (1 * 2 + 1 * 1)  # x consumers (2, 1)


def test_cli_encode_inspect_extract_decode(tmp_path, capsys):
    from discover.datasets.synthetic_scenes import SceneGenerator

    image = SceneGenerator(0, "val", 120, 160, 2, 3).render(0)[0]
    Image.fromarray(image).save(tmp_path / "in.png")
    (tmp_path / "boxes.json").write_text(json.dumps({"detection": [[10, 10, 60, 50]]}))
    args = ["--model", "discover-mini", "--rate", "2", "--mask-from", str(tmp_path / "boxes.json")]
    assert cli(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "a.dsc"), *args]) == 0
    assert cli(["inspect", str(tmp_path / "a.dsc")]) == 0
    report = capsys.readouterr().out
    assert "model: discover-mini" in report and "detection" in report and "bpp" in report
    assert (
        cli(
            [
                "extract",
                str(tmp_path / "a.dsc"),
                "--consumer",
                "detection",
                "-o",
                str(tmp_path / "d.dsc"),
            ]
        )
        == 0
    )
    assert (tmp_path / "d.dsc").stat().st_size < (tmp_path / "a.dsc").stat().st_size
    for src, consumer in (("a.dsc", "human"), ("d.dsc", "detection")):
        png = tmp_path / f"{consumer}.png"
        assert cli(["decode", str(tmp_path / src), "-o", str(png), "--consumer", consumer]) == 0
        assert np.asarray(Image.open(png)).shape == image.shape
    # the human consumer cannot be decoded from the detection cut: a clear error, exit 2
    assert cli(["decode", str(tmp_path / "d.dsc"), "-o", str(tmp_path / "x.png")]) == 2
    assert "human consumer needs all" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert cli(["check-codec", "discover-mini", "--config", str(ROOT / "config.yaml")]) == 0
    assert "r1.pth.tar" in capsys.readouterr().out
    (tmp_path / "bad.dsc").write_bytes((tmp_path / "a.dsc").read_bytes()[:-7])
    assert cli(["inspect", str(tmp_path / "bad.dsc")]) == 2
    assert "bad.dsc: checksum mismatch" in capsys.readouterr().err


def test_train_rules_run_a_few_steps(tmp_path):
    from discover.discover_codec.model import load_model_dir

    cfg = discover_config(rates=[1, 8])
    cfg["trained_weights_dir"] = str(tmp_path / "w")
    spec = cfg["discover_training"]["discover-mini"]
    spec.update(lambdas=[1, 8], steps=2, stage2_steps=1, num_images=2, batch_size=2)
    spec["vae"] = {"steps": 2, "crop": 64, "batch_size": 2, "num_images": 2}
    config = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, config, "train_all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = tmp_path / "w" / "discover-mini"
    for rate in (1, 8):
        meta = json.loads((d / f"r{rate}.json").read_text())
        assert meta["sha256"] == sha256(d / f"r{rate}.pth.tar") and meta["lambda_R"] == rate
        assert "snakemake" in meta["command"]
    model = load_model_dir(d, "8")
    image = np.zeros((64, 64, 3), np.uint8)
    assert model.decode(model.encode(image), "human").shape == image.shape


def test_committed_discover_weights_have_sidecars():
    d = ROOT / "weights" / "discover-mini"
    vae_meta = json.loads((d / "vae.json").read_text())
    for name, digest in vae_meta["sha256"].items():
        assert sha256(d / "vae" / name) == digest
    for rate in DEFAULT["discover_training"]["discover-mini"]["lambdas"]:
        meta = json.loads((d / f"r{rate}.json").read_text())
        assert meta["sha256"] == sha256(d / f"r{rate}.pth.tar")
        assert meta["steps"] == DEFAULT["discover_training"]["discover-mini"]["steps"]


def test_full_config_reads_sd_vae_through_the_weights_cache(tmp_path):
    """The paper-size codec: explicit codec weights plus SD 2.1-base's VAE from the Hub, which
    only the fetch_weight localrule downloads; compute jobs read the cached snapshot."""
    weights = tmp_path / "r1.pth.tar"
    weights.write_bytes(b"placeholder: only the dry run reads this path")
    cfg = discover_config(architecture="full", weights={1: str(weights)}, rates=[1])
    del cfg["codecs"]["discover-mini"]["trained"]
    config = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, config, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fetch_weight " in proc.stdout  # the VAE snapshot is a job of its own
    manifest = "hf--stabilityai--stable-diffusion-2-1-base--vae.manifest.json"
    proc = snakemake(tmp_path, config, "-n", "fetch_weights")
    assert manifest in proc.stdout + proc.stderr


def test_vae_loads_from_a_local_dir_or_a_cached_hub_snapshot(tmp_path):
    from diffusers import AutoencoderKL

    from discover.discover_codec.vae import TINY_VAE_CONFIG, load_vae
    from discover.errors import WeightsMissingError
    from discover.weights import hub_spec

    with pytest.raises(WeightsMissingError, match="snakemake fetch_weights"):
        load_vae("stabilityai/stable-diffusion-2-1-base/vae", tmp_path / "cache")
    spec = hub_spec("owner/sd-like/vae")
    snapshot = tmp_path / "cache" / spec.snapshot / "vae"
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(snapshot)
    (tmp_path / "cache" / spec.filename).write_text("{}")
    assert load_vae("owner/sd-like/vae", tmp_path / "cache").config.latent_channels == 4
    assert load_vae(snapshot).config.latent_channels == 4


def test_same_config_gives_byte_identical_streams_and_metrics(discover_run, tmp_path):
    from .conftest import tree_digest

    config = write_config(tmp_path / "config.yaml", discover_config(tasks=TWO_TASKS))
    targets = [
        f"results/metrics/scenes/discover-mini@{consumer}/{rate}/s0000.csv"
        for consumer in ("human", "detection", "instance_segmentation")
        for rate in (1, 8)
    ]
    proc = snakemake(tmp_path, config, *targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rate in (1, 8):
        for pattern in (
            f"scenes/discover-mini*/{rate}/*/*.dsc",
            f"metrics/*/discover-mini*/{rate}/*.csv",
        ):
            first = tree_digest(discover_run / "results", pattern)
            assert first and first == tree_digest(tmp_path / "results", pattern)


def test_outputs_equal_those_recorded_before_the_code_moved(discover_run):
    """Streams, reconstructions, metrics and tables byte for byte as the commit before the
    re-homing of the package wrote them (tests/data/recorded_digests.json)."""
    check_recorded_digest(discover_run, "discover_run")
