"""The paper's figures from a tiny DAG with DISCOVER and generative composition: the Fig. 7 grid
with "Ours (Detection)", "Ours (Full)" and "Ground Truth (Detection)", the Fig. 4 figure of the
composition's latents, and layouts whose texts, images and legends never cover each other."""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from .conftest import ROOT, job_threads, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
CODEC = "discover-gen"
#: the grounded boxes' colour in the grid (discover.plots.draw_boxes)
BOX_COLOUR = (255, 255, 0)


def figure_config(prior_dir, control_dir) -> dict:
    """JPEG and DISCOVER with composition (the tiny test prior, random control module) on the
    tiny scenes, detection masks from the oracle grounder on the static label list."""
    cfg = tiny_config(shard_size=4)
    cfg["codecs"] = {
        "jpeg": {"type": "jpeg", "label": "JPEG", "rates": [15, 50, 90]},
        CODEC: {
            "type": "discover",
            "label": "DISCOVER (test prior)",
            "trained": "discover-mini",
            "rates": [1],
            "tasks": {"detection": {"mask": "grounding"}},
            "composition": {
                "prior": str(prior_dir),
                "control": str(control_dir.parent),
                "steps": {"machine": 2, "human": 3},
                "seed": 5,
            },
        },
    }
    cfg["anchor"] = "jpeg"
    cfg["metrics"] = ["psnr"]
    cfg["discover_training"] = copy.deepcopy(DEFAULT["discover_training"])
    cfg["training_data"] = copy.deepcopy(DEFAULT["training_data"])  # the pools it names
    cfg["tasks"] = {
        "detection": {
            "description": "object detection of the shapes",
            "labels": copy.deepcopy(DEFAULT["tasks"]["detection"]["labels"]),
        }
    }
    cfg["semantics"] = {"grounding": {"backend": "gt"}}
    return cfg


@pytest.fixture(scope="module")
def figure_run(prior_dir, control_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("figure_run")
    cfg = figure_config(prior_dir, control_dir)
    proc = snakemake(work, write_config(work / "config.yaml", cfg))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, cfg


def plan_of(work, cfg):
    from discover.config import validate_config
    from discover.plan import Plan

    with contextlib.chdir(work):
        return Plan(validate_config(copy.deepcopy(cfg)), basedir=ROOT)


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_no_overlaps(layout: dict) -> int:
    """No two of the heading, the panels' titles, captions and images overlap, and all lie in
    the figure; returns how many boxes were compared."""
    boxes = [("heading", layout["title"])]
    for i, p in enumerate(layout["panels"]):
        boxes += [(f"title {i} {p['title']!r}", p["title_box"]), (f"image {i}", p["image_box"])]
        if p["caption_box"] is not None:
            boxes.append((f"caption {i} {p['caption']!r}", p["caption_box"]))
    width, height = layout["size"]
    for name, (x0, y0, x1, y1) in boxes:
        assert -0.5 <= x0 < x1 <= width + 0.5 and -0.5 <= y0 < y1 <= height + 0.5, name
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            assert not overlap(box_a, box_b), f"{a} overlaps {b}: {box_a} {box_b}"
    return len(boxes)


def grounding_record(path, image: str) -> dict:
    """The image's record of a grounding file, read as plain JSON."""
    doc = json.loads(path.read_text())
    (record,) = [r for r in doc["images"] if str(r["image"]) == image]
    return record


def boxes_drawn_with_pil(reference: np.ndarray, boxes: list) -> np.ndarray:
    """The reference with each [x, y, w, h] box outlined by PIL: pixels floor(x)..ceil(x+w)-1,
    clipped to the image, the outline 1 pixel wide per 128 pixels of the longer side."""
    h, w = reference.shape[:2]
    width = max(1, round(max(h, w) / 128))
    im = Image.fromarray(reference)
    draw = ImageDraw.Draw(im)
    for bx, by, bw, bh in boxes:
        x0, y0 = max(0, int(np.floor(bx))), max(0, int(np.floor(by)))
        x1, y1 = min(w - 1, int(np.ceil(bx + bw)) - 1), min(h - 1, int(np.ceil(by + bh)) - 1)
        if x1 >= x0 and y1 >= y0:
            draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=width)
    return np.asarray(im)


def test_fig7_grid_shows_the_task_stream_the_full_stream_and_the_grounded_boxes(
    figure_run, tmp_path
):
    """Paper Fig. 7's rows: "Ours (Detection)" (the task's stream, as the human viewer's
    decode), "Ours (Full)" and "Ground Truth (Detection)" (the grounding model's boxes on the
    original), after the original and the other codecs."""
    from discover.stages.tables import run_visual_grid

    work, cfg = figure_run
    res = work / "results"
    plan = plan_of(work, cfg)
    rows = plan.visual_grid_rows("scenes")
    assert list(rows) == ["jpeg", f"{CODEC}@detection", f"{CODEC}@human"]
    grounding = plan.visual_grid_grounding("scenes")
    assert grounding == {"detection": "results/semantics/scenes/detection/s0000.json"}
    grounding_file = work / grounding["detection"]
    # the image with the most grounded boxes
    doc = json.loads(grounding_file.read_text())
    image = str(max(doc["images"], key=lambda r: len(r["boxes"]))["image"])
    record = grounding_record(grounding_file, image)
    assert record["boxes"]
    out = run_visual_grid(
        "scenes",
        {r: {k: [work / p for p in v] for k, v in rates.items()} for r, rates in rows.items()},
        res / "scenes/reference/s0000",
        res / "tables/scenes/rd.csv",
        tmp_path / "grid.png",
        image=image,
        grounding={t: work / p for t, p in grounding.items()},
    )
    panels = out["panels"]
    heads = [p["title"].split("\n")[0] for p in panels]
    assert heads == [
        "Original",
        "JPEG",
        "Ours (Detection)",
        "Ours (Full)",
        "Ground Truth (Detection)",
    ]
    reference = np.asarray(Image.open(res / f"scenes/reference/s0000/{image}.png").convert("RGB"))
    assert np.array_equal(panels[0]["image"], reference)
    task, full = panels[2], panels[3]
    assert (task["row"], full["row"]) == (f"{CODEC}@detection", f"{CODEC}@human")
    # the task stream is cut from the same bitstream as the full one: the same rate point
    assert task["rate"] == full["rate"] == "1"
    for panel in (task, full):
        decoded = res / f"scenes/{panel['row']}/{panel['rate']}/s0000/{image}.png"
        assert np.array_equal(panel["image"], np.asarray(Image.open(decoded).convert("RGB")))
        metrics = pd.read_csv(
            res / f"metrics/scenes/{panel['row']}/{panel['rate']}/s0000.csv", dtype={"id": str}
        ).set_index("id")
        assert panel["bpp"] == pytest.approx(metrics.loc[image, "bpp"], rel=1e-12)
        stream = decoded.with_suffix(".dsc")  # bits = 8 x the bytes that viewer received
        assert panel["bpp"] == pytest.approx(8 * stream.stat().st_size / reference[..., 0].size)
    assert task["bpp"] < full["bpp"]
    # the grounded boxes, drawn on the original: recomputed from the grounding file with PIL
    truth = panels[4]
    assert truth["boxes"] == record["boxes"]
    expected = boxes_drawn_with_pil(reference, record["boxes"])
    assert np.array_equal(truth["image"], expected)
    assert (truth["image"] != reference).any(axis=-1).sum() > 0
    assert check_no_overlaps(out["layout"]) == 1 + 3 * len(panels)
    saved = Image.open(tmp_path / "grid.png")
    assert saved.size == tuple(round(v) for v in out["layout"]["size"])
    # the DAG drew the grid and the Fig. 4 figure of this dataset
    for name in ("visual_grid.png", "latent_figure.png"):
        assert Image.open(res / "plots/scenes" / name).width > 500


def test_grid_titles_captions_and_images_never_overlap_on_photos(tmp_path):
    """Photographs of different aspect ratios in rows of four, with long two-line titles (the
    layout that printed one row's captions over the next row's titles)."""
    import skimage.data

    from discover.plots import Panel, visual_grid

    photos = [getattr(skimage.data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket")]
    labels = [
        "Original",
        "JPEG (libjpeg)\nrate 10",
        "bmshj2018-hyperprior (mini, trained here)\nrate 3",
        "Ours (Detection)\nDISCOVER w/o composition (mini, trained here), λ_R = 4",
        "Ours (Full)\nDISCOVER w/o composition (mini, trained here), λ_R = 4",
        "Ground Truth (Detection)",
        "an_unbroken_label_longer_than_any_panel_is_wide_abcdefghijklmnopqrstuvwxyz_0123456789",
    ]
    for k in range(len(photos)):
        panels = [
            Panel(label, photos[(k + i) % len(photos)], f"{0.1 * i:.3f} bpp")
            for i, label in enumerate(labels)
        ]
        layout = visual_grid(panels, tmp_path / f"grid{k}.png", "photos: image x, target 0.3 bpp")
        assert check_no_overlaps(layout) == 1 + 3 * len(panels)
        rows = {round(p["title_box"][1]) for p in layout["panels"]}
        assert len(rows) == 2  # seven panels: rows of four


def test_rd_plot_legend_stays_off_the_axes(figure_run, tmp_path):
    """The legend of an RD plot (and of an ablation plot, with the uncompressed line) lies
    outside the axes, so no curve is hidden; the saved figure has the measured size."""
    from discover.plots import rd_plot

    work, _ = figure_run
    rd = pd.read_csv(work / "results/tables/scenes/rd.csv", dtype={"rate": str})
    assert len(set(rd.codec)) == 3
    # and a table with many long-labelled curves, as the demo's scenes detection AP plot has
    many = pd.concat(
        [
            rd.assign(codec=rd.codec + f"-{i}", label=rd.label + f" variant {i} [detection]")
            for i in range(4)
        ]
    )
    for table, reference in ((rd, None), (rd, float(rd.psnr.max())), (many, None)):
        png = tmp_path / "rd.png"
        boxes = rd_plot(table, "psnr", png, tmp_path / "rd.pdf", "scenes: PSNR", "jpeg", reference)
        assert not overlap(boxes["axes"], boxes["legend"]), boxes
        fig = boxes["figure"]
        for name in ("axes", "legend"):
            x0, y0, x1, y1 = boxes[name]
            assert fig[0] <= x0 and x1 <= fig[2] + 0.5 and fig[1] <= y0 and y1 <= fig[3] + 0.5
        assert Image.open(png).size == (round(fig[2]), round(fig[3]))


def test_fig4_composed_panel_is_the_decoded_image(figure_run, tmp_path):
    """Paper Fig. 4: z_c = E(x), ẑ_c of the task's stream and the composed z_0 with their VAE
    decodes; x̂ = D(z_0) is the image the DAG decoded for that stream and rate (the human
    view), D(ẑ_c) the codec's decode without composition."""
    from discover.discover_codec.bitstream import Container
    from discover.discover_codec.model import load_model_dir
    from discover.stages.tables import run_latent_figure

    work, cfg = figure_run
    res = work / "results"
    plan = plan_of(work, cfg)
    figure = plan.latent_figure("scenes")
    assert (figure["codec"], figure["rate"], figure["consumer"]) == (CODEC, "1", "detection")
    assert figure["decoded"] == f"results/scenes/{CODEC}@detection/1/s0000"
    with contextlib.chdir(work), job_threads(1):  # the decode job's threads
        out = run_latent_figure(
            plan.codec_job_config(CODEC, "1"),
            CODEC,
            "1",
            "detection",
            "results/scenes/reference/s0000",
            figure["decoded"],
            tmp_path / "latents.png",
        )
    image = out["image"]
    decoded = res / f"scenes/{CODEC}@detection/1/s0000/{image}.png"
    x_hat = out["panels"][7]
    assert x_hat.title.startswith("$\\hat{x}")
    assert np.array_equal(x_hat.image, np.asarray(Image.open(decoded).convert("RGB")))
    assert out["matches_decoded"]
    # D(ẑ_c): what the codec decodes for the task's stream without composition
    stream = Container.from_bytes(decoded.with_suffix(".dsc").read_bytes())
    with job_threads(1):
        plain = load_model_dir("discover-mini", "1").decode(stream, "detection")
    assert np.array_equal(out["panels"][6].image, plain)
    reference = np.asarray(Image.open(res / f"scenes/reference/s0000/{image}.png").convert("RGB"))
    assert np.array_equal(out["panels"][0].image, reference)
    # ỹ_i: the original where the task's latent mask (the grounding file's, 16-px cells) lies,
    # dimmed elsewhere
    record = grounding_record(res / "semantics/scenes/detection/s0000.json", image)
    runs, (gh, gw) = record["mask_rle"], record["grid"]
    cells = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(gh, gw)
    inside = np.kron(cells, np.ones((16, 16), dtype=bool))[
        : reference.shape[0], : reference.shape[1]
    ]
    assert 0 < inside.sum() < inside.size
    shown = out["panels"][4].image
    assert np.array_equal(shown[inside], reference[inside])
    assert (shown[~inside] <= reference[~inside]).all() and (
        shown[~inside] < reference[~inside]
    ).any()
    assert check_no_overlaps(out["layout"]) == 1 + 3 * len(out["panels"])
    # none without a DISCOVER codec with composition
    assert plan_of(work, tiny_config()).latent_figure("scenes") is None
