"""configs/paper.yaml, the paper's benchmark: it validates, documents where each protocol choice
comes from, plans the jobs the protocol implies at the paper's sizes (COCO val2017 5,000, ImageNet
val 50,000, Kodak 24, CLIC 2020 test 428), and its CLIC 2020 / Kodak protocols give what the
paper describes.

The dry runs need file lists only: COCO and ImageNet are listed from their annotation and label
files, Kodak and CLIC from their folders (empty files), and the weights are empty files in a
weights cache and a user-weights folder, as `snakemake fetch_weights` and the user would leave
them. Expected job counts are computed here from the protocol (images / shard size x rate points
x table rows ...), not taken from the plan.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from discover.config import validate_config
from discover.datasets import get_dataset
from discover.datasets.base import dataset_shard_size
from discover.metrics.distribution import fid_protocol
from discover.metrics.patches import fid_patches
from discover.plan import Plan
from discover.plan.run import forbidding_imports

from .conftest import snakemake

ROOT = Path(__file__).resolve().parent.parent
PAPER_CONFIG = ROOT / "configs" / "paper.yaml"

#: the paper's evaluation sets at full size (CLIC 2020: the professional + mobile test set)
FULL_SIZES = {"coco": 5000, "imagenet": 50000, "kodak": 24, "clic2020": 428}
#: a reduced copy for `snakemake -n`: two shards of COCO and ImageNet, the last one partial
REDUCED_SIZES = {"coco": 300, "imagenet": 1260, "kodak": 24, "clic2020": 428}

#: where each task is measured (paper §4.1.1) and the columns its evaluation adds: COCO's six
#: summary APs (AP, AP50, AP75, APs, APm, APl) per IoU type, top-1 / top-5 for classification
TASK_DATASET = {"detection": "coco", "instance_segmentation": "coco", "classification": "imagenet"}
#: DISCOVER's table rows (consumers) per entry and dataset: the task streams of the tasks
#: measured there, and the full stream where the entry decodes it
DISCOVER_CONSUMERS = {
    "discover": {
        "coco": ["human", "detection", "instance_segmentation"],
        "kodak": ["human"],
        "clic2020": ["human"],
    },
    "discover-cls": {"imagenet": ["classification"]},
    "discover-nocomp": {"coco": ["human", "detection", "instance_segmentation"]},
}
PERCEPTION_METRICS = 6  # psnr, msssim, lpips, dists, fid, kid
#: the task models' weights (paper §4.1.1), read from the weights cache
TORCHVISION_TASK_WEIGHTS = (
    "FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
    "MaskRCNN_ResNet50_FPN_Weights.COCO_V1",
    "ResNet50_Weights.IMAGENET1K_V1",
)


def raw_config() -> dict:
    return yaml.safe_load(PAPER_CONFIG.read_text())


def header() -> str:
    """The comment block at the top of the file (the protocol choices and their sources)."""
    lines = []
    for line in PAPER_CONFIG.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


# -- the file ----------------------------------------------------------------------------------


def test_paper_config_is_valid_and_names_the_sources_of_its_choices():
    raw = raw_config()
    config = validate_config(raw)
    assert config["anchor"] == "vtm" and config["codecs"]["vtm"]["version"] == "12.1"
    assert (config["bd"]["method"], config["bd"]["envelope"]) == ("cubic", "none")
    assert config["codecs"]["discover"]["rates"] == [1, 2, 4, 8]
    assert config["codecs"]["elic"]["architecture"] == "elic2022-official"
    assert {t: c["weights"] for t, c in config["tasks"].items()} == {
        "detection": TORCHVISION_TASK_WEIGHTS[0],
        "instance_segmentation": TORCHVISION_TASK_WEIGHTS[1],
        "classification": TORCHVISION_TASK_WEIGHTS[2],
    }

    text = header()
    sections = re.findall(r"^\[([a-zA-Z ]+)\]$", text, re.M)
    assert sections == ["datasets", "bits and metrics", "codecs", "DISCOVER", "run"]
    bodies = re.split(r"^\[[a-zA-Z ]+\]$", text, flags=re.M)[1:]
    for section, body in zip(sections, bodies, strict=True):
        assert "paper §" in body or section == "run", f"[{section}] cites no section"
        assert "our choice" in body, f"[{section}] marks no choice of ours"
    # every § reference names a section number of the paper
    assert re.findall(r"§(\S*)", text) and all(
        re.match(r"\d", ref) for ref in re.findall(r"§(\S*)", text)
    )
    # every dataset and codec of the file is accounted for in the header
    for name in ("COCO val2017", "ImageNet val", "Kodak", "CLIC 2020"):
        assert name in text
    for name in ("VTM-12.1", "ELIC", "MS-ILLM", "JPEG", "WebP", "AVIF", "HEVC", "DISCOVER"):
        assert name in text
    assert "[30]" in text and "Bjøntegaard" in text and "cubic" in text


def plug_in_slots() -> dict:
    """The commented codec entries of the file, uncommented."""
    entries, current = {}, None
    for line in PAPER_CONFIG.read_text().splitlines():
        start = re.match(r"^  # ([a-z][a-z0-9-]*):$", line)
        if start:
            current = start.group(1)
            entries[current] = []
        elif current and line.startswith("  #   "):
            entries[current].append(line[len("  # ") :])
        else:
            current = None
    return {name: yaml.safe_load("\n".join(body)) for name, body in entries.items()}


def test_fat_transtic_and_perco_slots_are_valid_entries_left_disabled():
    slots = plug_in_slots()
    assert set(slots) == {"fat", "transtic-det", "transtic-seg", "transtic-cls", "perco"}
    raw = raw_config()
    assert not set(slots) & set(raw["codecs"])  # documented, not enabled
    config = copy.deepcopy(raw)
    config["codecs"].update(slots)
    validated = validate_config(config)
    assert validated["codecs"]["fat"]["type"] == "fat_adapter:FatCodec"
    assert {slots[f"transtic-{t}"]["datasets"][0] for t in ("det", "seg", "cls")} == {
        "coco",
        "imagenet",
    }
    assert slots["perco"]["type"] == "published" and slots["perco"]["source"]
    text = PAPER_CONFIG.read_text()
    for repository in ("qingshi9974/ICLR2024-FTIC", "NYCU-MAPL/TransTIC", "Nikolai10/PerCo"):
        assert f"https://github.com/{repository}" in text


def test_clic2020_and_kodak_protocols_give_the_papers_images_and_patches(tmp_path, monkeypatch):
    """CLIC 2020: short side 768, centre crop 768x768, nine 256x256 patches for FID/KID;
    Kodak as it is (768x512: six patches)."""
    monkeypatch.chdir(tmp_path)
    config = validate_config(raw_config())
    rng = np.random.default_rng(0)
    clic = Path(config["datasets"]["clic2020"]["path"])
    (clic / "mobile").mkdir(parents=True)
    original = Image.fromarray(rng.integers(0, 256, (1000, 1500, 3), dtype=np.uint8))
    original.save(clic / "mobile" / "photo.png")
    kodak = Path(config["datasets"]["kodak"]["path"])
    kodak.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)).save(kodak / "k.png")

    dataset = get_dataset("clic2020", config)
    (item,) = dataset.list_items()
    loaded = dataset.load(item)
    # independently: 1500x1000 -> short side 768 is 1152x768, then the central 768 columns
    expected = original.resize((1152, 768), Image.Resampling.BICUBIC).crop((192, 0, 960, 768))
    np.testing.assert_array_equal(loaded, np.asarray(expected))
    protocol = fid_protocol(config["datasets"]["clic2020"], "clic2020")
    assert (protocol["patch"], protocol["shifted"]) == (256, False)
    patches = fid_patches(loaded, protocol["patch"], protocol["shifted"])
    assert len(patches) == (768 // 256) ** 2
    np.testing.assert_array_equal(patches[4], loaded[256:512, 256:512])

    kodak_set = get_dataset("kodak", config)
    (kodak_item,) = kodak_set.list_items()
    kodak_image = kodak_set.load(kodak_item)
    assert kodak_image.shape == (512, 768, 3)
    kodak_protocol = fid_protocol(config["datasets"]["kodak"], "kodak")
    assert len(fid_patches(kodak_image, kodak_protocol["patch"])) == 2 * 3


# -- the plan at the paper's sizes ---------------------------------------------------------


def write_file_lists(root: Path, config: dict, sizes: dict[str, int]) -> None:
    """What the dataset types read, at ``sizes``: COCO's instances json and ImageNet's label
    file (the images themselves are opened by the jobs only), Kodak's and CLIC's folders."""
    coco = config["datasets"]["coco"]
    (root / coco["images"]).mkdir(parents=True)
    annotations = root / coco["annotations"]
    annotations.parent.mkdir(parents=True)
    images = [
        {"id": 139 + i, "file_name": f"{139 + i:012d}.jpg", "width": 640, "height": 480}
        for i in range(sizes["coco"])
    ]
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    annotations.write_text(
        json.dumps({"images": images, "annotations": [], "categories": categories})
    )
    imagenet = config["datasets"]["imagenet"]
    (root / imagenet["images"]).mkdir(parents=True)
    (root / imagenet["labels"]).write_text(
        "".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {i % 1000}\n" for i in range(sizes["imagenet"]))
    )
    kodak = root / config["datasets"]["kodak"]["path"]
    kodak.mkdir(parents=True)
    for i in range(sizes["kodak"]):
        (kodak / f"kodim{i + 1:02d}.png").touch()
    clic = root / config["datasets"]["clic2020"]["path"]
    for i in range(sizes["clic2020"]):
        part = clic / ("professional" if i < 250 else "mobile")
        part.mkdir(parents=True, exist_ok=True)
        (part / f"clic_{i:03d}.png").touch()


def write_user_weights(root: Path, config: dict) -> None:
    """The state dicts the user supplies (the ELIC codec's, which DISCOVER's training also
    starts from), as empty files."""
    paths = [p for e in config["codecs"].values() for p in (e.get("weights") or {}).values()]
    for entry in config["composition_training"].values():
        paths += list((entry.get("elic_weights") or {}).values())
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()


def fill_weights_cache(root: Path, config: dict, names) -> None:
    cache = root / config["weights_cache"]
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        (cache / name).touch()


def expected_jobs(config: dict, sizes: dict[str, int]) -> dict[str, int]:
    """Jobs per rule of a full run, from the protocol: images / shard_size shards per dataset,
    rate points per codec, table rows per dataset (every measured codec, DISCOVER once per
    consumer), a second (machine-step) decode where DISCOVER's composition samples other steps
    for task models than for the human metrics."""
    codecs = config["codecs"]
    shards = {d: math.ceil(n / dataset_shard_size(config, d)) for d, n in sizes.items()}
    rates = {c: len(e["rates"]) for c, e in codecs.items()}
    classic = [c for c in codecs if c not in DISCOVER_CONSUMERS]  # on every dataset
    rows = {
        d: len(classic) + sum(len(cons.get(d, [])) for cons in DISCOVER_CONSUMERS.values())
        for d in sizes
    }

    def task_rows(task: str) -> int:
        d = TASK_DATASET[task]
        own = sum(
            len([c for c in cons.get(d, []) if c in (task, "human")])
            for cons in DISCOVER_CONSUMERS.values()
        )
        return len(classic) + own

    def machine_view(codec: str) -> bool:
        steps = (codecs[codec].get("composition") or {}).get("steps")
        return bool(steps) and steps["machine"] != steps["human"]

    def seen_by_tasks(codec: str, d: str) -> int:
        """Rows of ``codec`` on ``d`` that a task model looks at (its task streams, and the
        full stream where a task is measured: "w/o disentanglement")."""
        tasks = [t for t, td in TASK_DATASET.items() if td == d]
        consumers = DISCOVER_CONSUMERS[codec].get(d, [])
        return len([c for c in consumers if c in tasks or (c == "human" and tasks)])

    grounded = {d: [t for t, td in TASK_DATASET.items() if td == d] for d in sizes}
    task_datasets = sorted(set(TASK_DATASET.values()))
    counts = {
        "prepare_shard": sum(shards.values()),
        "codec_shard": sum(rates[c] for c in classic) * sum(shards.values()),
        "discover_encode": sum(
            rates[c] * shards[d] for c, cons in DISCOVER_CONSUMERS.items() for d in cons
        ),
        "discover_decode": sum(
            rates[c] * shards[d] * len(k)
            for c, cons in DISCOVER_CONSUMERS.items()
            for d, k in cons.items()
        ),
        "discover_decode_machine": sum(
            rates[c] * shards[d] * seen_by_tasks(c, d)
            for c, cons in DISCOVER_CONSUMERS.items()
            if machine_view(c)
            for d in cons
        ),
        "aggregate_rd": sum(rows.values()),
        "combine_rd": len(sizes),
        "bd_table": len(sizes),
        "rd_plot": sum(
            PERCEPTION_METRICS + len(grounded[d])
            for d in sizes  # a task's headline metric
        ),
        "fid_reference": len(sizes),
        "fid_kid": sum(rows.values()),
        "perception_table": len(sizes),
        "task_predict": sum(shards[TASK_DATASET[t]] * (task_rows(t) + 1) for t in TASK_DATASET),
        "task_eval": sum(task_rows(t) + 1 for t in TASK_DATASET),
        "task_table": len(task_datasets),
        "task_labels": len(TASK_DATASET),
        "grounding_report": len(TASK_DATASET),
        "ground_shard": sum(shards[TASK_DATASET[t]] for t in TASK_DATASET),
        "merge_annotations": 1,  # COCO
        "visual_grid": len(config["visual_grid"]["datasets"]),
        "training_loss_plot": 1,  # the trained DISCOVER's loss curves (composition_training)
        "latent_figure": 4,  # every dataset has a DISCOVER codec with composition
        "ablation_plot": len(TASK_DATASET),  # every task has a DISCOVER stream and ELIC
        "summary": 1,  # results/summary.html
        "all": 1,
    }
    return {rule: n for rule, n in counts.items() if n}


def test_plan_at_full_size_has_the_protocols_jobs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = validate_config(raw_config())
    write_file_lists(tmp_path, config, FULL_SIZES)
    plan = Plan(config)
    assert {d: plan.num_images(d) for d in plan.datasets} == FULL_SIZES
    # the state after `snakemake fetch_weights`: every metric is computed
    fill_weights_cache(tmp_path, config, plan.official_weights())
    plan = Plan(config)
    assert plan.metric_status == {}
    expected = expected_jobs(config, FULL_SIZES)
    counts = {rule: n for rule, n in plan.job_count().items() if n and rule != "total"}
    assert counts == expected
    assert plan.job_count()["total"] == sum(expected.values())
    # the same arithmetic by hand: 20 + 1 + 2 shards of 250 images, 50 of ImageNet's 1,000
    shards = 20 + 50 + 1 + 2
    assert counts["codec_shard"] == (6 + 6 + 6 + 7 + 6 + 7 + 7) * shards
    assert counts["discover_encode"] == 4 * (20 + 1 + 2) + 4 * 50 + 4 * 20
    assert counts["discover_decode"] == 4 * (20 * 3 + 1 + 2) + 4 * 50 + 4 * 20 * 3
    assert counts["discover_decode_machine"] == 4 * 20 * 3  # 8 vs 50 steps, COCO only
    assert counts["task_predict"] == 20 * (11 + 1) * 2 + 50 * (8 + 1)
    assert counts["ground_shard"] == 20 * 2 + 50
    assert {d: plan.table_rows(d)[-1] for d in plan.datasets} == {
        "coco": "discover-nocomp@instance_segmentation",
        "imagenet": "discover-cls@classification",
        "kodak": "discover@human",
        "clic2020": "discover@human",
    }


def test_fetch_weights_fetches_the_task_models():
    """Every file the run reads from the weights cache is one `snakemake fetch_weights`
    downloads: the torchvision COCO_V1 / IMAGENET1K_V1 files named by torchvision's URLs."""
    from torchvision.models import get_weight

    config = validate_config(raw_config())
    fetched = Plan(config).official_weights()
    for name in TORCHVISION_TASK_WEIGHTS:
        assert get_weight(name).url.rsplit("/", 1)[-1] in fetched, name


def test_dry_run_of_a_reduced_copy_plans_the_protocols_jobs(tmp_path, monkeypatch):
    """`snakemake -n` on the paper config with two shards of COCO and ImageNet, after
    `fetch_weights` (the cache holds exactly what it fetches): the DAG's jobs per rule are the
    protocol's, and no weight is left to fetch."""
    config = validate_config(raw_config())
    write_file_lists(tmp_path, config, REDUCED_SIZES)
    write_user_weights(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    fill_weights_cache(tmp_path, config, Plan(config).official_weights())
    # the Snakefile is parsed and the DAG built without torch (seconds saved on every plan)
    env = forbidding_imports(tmp_path / "no_torch", "torch")
    proc = snakemake(tmp_path, PAPER_CONFIG, "-n", "--quiet", "rules", timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1].split("Reasons:")[0]
    planned = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}
    planned.pop("total")
    # DISCOVER's weights are not there yet: the run trains them first, one job per λ_R on the
    # GPUs and ranks the entry asks for, from one list of the training images
    training = {"training_manifest": 1, "train_composition": 4, "discover_model_index": 1}
    assert planned == {**expected_jobs(config, REDUCED_SIZES), **training}
    # trained_weights_dir is relative to the repository (the paper config runs from there)
    target = str(ROOT / config["trained_weights_dir"] / "discover" / "r1.pth.tar")
    proc = snakemake(tmp_path, PAPER_CONFIG, "-n", "--", target, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Training discover with composition at λ_R=1" in proc.stdout, proc.stdout[-2000:]
    # what the job asks SLURM for: 4 GPUs, 4 ranks (one per GPU, started with srun), one CPU
    # for the loop and one per DataLoader worker (8) per rank
    plan = Plan(config)
    assert plan.composition_gpus("discover") == 4 and plan.composition_nodes("discover") == 1
    assert plan.composition_processes("discover") == 4
    assert plan.composition_threads("discover") == 36
    assert plan.composition_cpus_per_task("discover") == 9


def test_the_cluster_profile_plans_the_paper_config_with_gpu_models(tmp_path, monkeypatch):
    """`snakemake -n --profile profiles/slurm` on a reduced copy: the group jobs form (every
    member of a group job asks for one GPU model), also when DISCOVER's entries name a GPU model
    and ELIC, another GPU codec, names none."""
    config = validate_config(raw_config())
    write_file_lists(tmp_path, config, REDUCED_SIZES)
    write_user_weights(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    fill_weights_cache(tmp_path, config, Plan(config).official_weights())
    raw = raw_config()
    for name in ("discover", "discover-cls", "discover-nocomp"):
        raw["codecs"][name]["gpu_model"] = "h100"
    for path, doc in ((PAPER_CONFIG, None), (tmp_path / "gpu_models.yaml", raw)):
        if doc is not None:
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        # from the repository, where the profile names its partitions file
        proc = snakemake(tmp_path, path, "-n", "--profile", "profiles/slurm", cwd=ROOT)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        groups = re.findall(r"Group job (\w+)", proc.stdout)
        assert "codec_gpu" in groups and "codec_cpu" in groups, sorted(set(groups))
        # the configs differ in DISCOVER's group only: ELIC's GPU jobs keep codec_gpu
        assert ("codec_gpu_h100" in groups) == (doc is not None), sorted(set(groups))
