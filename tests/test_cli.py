"""The command line as a new user meets it: on the committed models, from any directory,
with messages instead of tracebacks, and without PyTorch where a header is all it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from discover.cli import main as cli
from discover.plan.run import forbidding_imports

from .conftest import ROOT

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "discover.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from discover.datasets.synthetic_scenes import SceneGenerator

    path = tmp_path_factory.mktemp("cli") / "scene.png"
    Image.fromarray(SceneGenerator(0, "val", 64, 96, 2, 3).render(0)[0]).save(path)
    return path


def test_check_codec_passes_on_the_embedded_default_from_anywhere(tmp_path):
    """Every codec of config.yaml as its DAG jobs load it: the committed trained weights, the
    VAE and the composition's prior and control modules, each a file that is there."""
    proc = _run("check-codec", cwd=tmp_path)  # no ./config.yaml: the repository's
    assert proc.returncode == 0, proc.stderr
    assert "FAILED" not in proc.stderr
    assert str(ROOT / "config.yaml") in proc.stdout
    for name in DEFAULT["codecs"]:
        assert f"{name}: ok" in proc.stdout
    said = proc.stdout.split("discover: ok")[1]
    # the paths it names are the committed files the composition model reads
    for rate in DEFAULT["codecs"]["discover"]["rates"]:
        assert f"weights/discover-gen/r{rate}.pth.tar" in said
        assert (ROOT / "weights/discover-gen/control" / f"r{rate}" / "config.json").is_file()
    assert "VAE weights/discover-mini/vae" in said
    assert "q1.pth.tar" in proc.stdout.split("hyperprior-mini: ok")[1]


def test_check_codec_names_what_is_missing(tmp_path):
    cfg = {
        "datasets": {"scenes": {"type": "synthetic-scenes", "num_images": 2}},
        "codecs": {
            "gone": {"type": "discover", "rates": [1], "weights": {1: str(tmp_path / "x.pth")}},
            "untrained": {"type": "discover", "trained": "discover-mini", "rates": [1]},
        },
        "anchor": "untrained",
        "trained_weights_dir": str(tmp_path / "empty"),
        "discover_training": DEFAULT["discover_training"],
        "training_data": DEFAULT["training_data"],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = _run("check-codec", "--config", "c.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert f"gone: FAILED: weight file {tmp_path / 'x.pth'} does not exist" in proc.stderr
    # weights the DAG trains before it needs them are no failure: it says how to train them
    assert "untrained: ok" in proc.stdout and "not trained yet" in proc.stdout
    assert "snakemake --cores 2 empty/discover-mini/r1.pth.tar" in proc.stdout


def test_committed_model_indexes_say_what_the_dag_loads():
    """weights/<model>/model_index.json against the plan of the embedded config: the CLI's
    VAE, prior and control modules are the ones the DAG's codec jobs read."""
    from discover.config import validate_config
    from discover.discover_codec.model_index import find_model_dir
    from discover.plan import Plan

    plan = Plan(validate_config(yaml.safe_load((ROOT / "config.yaml").read_text())), ROOT)
    for model in plan.discover_models:
        written = json.loads((ROOT / "weights" / model / "model_index.json").read_text())
        assert written == plan.discover_model_index(model), f"rerun: {written['command']}"
        found = find_model_dir(model)
        assert Path(found.vae).resolve() == (ROOT / plan.discover_vae_dir(model)).resolve()
        assert found.rates == [str(r) for r in plan.discover_training_spec(model)["lambdas"]]
    gen = find_model_dir("discover-gen").composition
    assert Path(gen["prior"]) == (ROOT / plan.prior_dir("discover-gen")).resolve()
    assert Path(gen["control"]) == (ROOT / plan.control_dir("discover-gen")).resolve()
    assert gen["steps"] == DEFAULT["codecs"]["discover"]["composition"]["steps"]


def test_decode_composes_as_the_dag_does(scene, tmp_path, monkeypatch, capsys):
    """`discover decode` of a discover-gen stream gives the image the DAG's codec gives for
    the same viewer; --no-composition the VAE decode."""
    from discover.codecs import get_codec
    from discover.config import validate_config
    from discover.plan import Plan

    monkeypatch.chdir(ROOT)  # --model discover: the config's codec, not the package folder
    stream = tmp_path / "s.dsc"
    assert cli(["encode", str(scene), "-o", str(stream), "--model", "discover", "--rate", "8"]) == 0
    assert cli(["inspect", str(stream)]) == 0
    assert "model: discover-gen" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    machine = tmp_path / "machine.png"
    assert cli(["decode", str(stream), "-o", str(machine), "--viewer", "machine"]) == 0
    assert "8 steps for the machine viewer" in capsys.readouterr().out
    plain = tmp_path / "plain.png"
    assert cli(["decode", str(stream), "-o", str(plain), "--no-composition"]) == 0

    plan = Plan(validate_config(yaml.safe_load((ROOT / "config.yaml").read_text())), ROOT)
    monkeypatch.chdir(ROOT)  # the job config's paths are the repository's
    codec = get_codec("discover", plan.codec_job_config("discover", "8"))
    shape = np.asarray(Image.open(scene)).shape[:2]
    dag = codec.decode(stream, shape, "8", "human", "machine")
    np.testing.assert_array_equal(np.asarray(Image.open(machine)), dag)
    without = codec.model("8").decode(_container(stream), "human")
    np.testing.assert_array_equal(np.asarray(Image.open(plain)), without)
    assert not np.array_equal(dag, without)


def _container(path: Path):
    from discover.discover_codec.bitstream import Container

    return Container.from_bytes(path.read_bytes(), str(path))


def test_model_argument_and_listing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # where `discover` is also the package's folder
    from discover.discover_codec.model_index import find_model_dir

    assert find_model_dir("discover", DEFAULT["codecs"]).model_id == "discover-gen"
    assert cli(["models"]) == 0
    listing = capsys.readouterr().out
    for model in ("discover-mini", "discover-gen"):
        on_disk = sorted(p.name[1:-8] for p in (ROOT / "weights" / model).glob("r*.pth.tar"))
        line = next(x for x in listing.splitlines() if x.strip().startswith(model))
        assert sorted(line.split("rates")[1].split()[: len(on_disk)]) == on_disk
    (tmp_path / "empty").mkdir()
    assert cli(["decode", "x.dsc", "-o", "y.png"]) == 2  # no stream: named
    assert "x.dsc: no such file" in capsys.readouterr().err
    image = tmp_path / "i.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    args = ["encode", str(image), "-o", str(tmp_path / "o.dsc"), "--rate", "3"]
    assert cli([*args, "--model", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "directory without r<λ_R>.pth.tar" in err and "discover-mini" in err
    assert cli([*args, "--model", "discover-mini"]) == 2
    assert "no rate point 3" in capsys.readouterr().err
    help_text = subprocess.run(
        [sys.executable, "-m", "discover.cli", "encode", "--help"], capture_output=True, text=True
    ).stdout
    assert "λ_R" in help_text and "fewer bits" in help_text


def test_a_task_named_human_is_refused_before_anything_is_encoded(scene, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"human": [[0, 0, 8, 8]]}))
    out = tmp_path / "o.dsc"
    args = ["encode", str(scene), "-o", str(out), "--model", "discover-mini", "--rate", "8"]
    assert cli([*args, "--mask-from", str(boxes)]) == 2
    assert f"{boxes}: a task cannot be named 'human'" in capsys.readouterr().err
    assert not out.exists()
    from discover.discover_codec.model import load_model_dir
    from discover.errors import CodecError

    with pytest.raises(CodecError, match="cannot be named 'human'"):
        load_model_dir("discover-mini", "8").encode(
            np.zeros((16, 16, 3), np.uint8), {"human": np.zeros((2, 2), bool)}
        )


def test_header_commands_need_no_torch(scene, tmp_path):
    stream = tmp_path / "s.dsc"
    args = ["--model", "discover-mini", "--rate", "8"]
    assert cli(["encode", str(scene), "-o", str(stream), *args]) == 0
    env = forbidding_imports(tmp_path / "no_torch", "torch", "pandas")
    for args in (
        ("inspect", str(stream)),
        ("extract", str(stream), "--consumer", "human", "-o", str(tmp_path / "h.dsc")),
        ("models",),
    ):
        proc = _run(*args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
    assert (tmp_path / "h.dsc").read_bytes() == stream.read_bytes()


def test_no_torch_jit_deprecation_warning_on_import(tmp_path):
    """CompressAI's torch_geometric import scripts functions at import: its FutureWarning is
    filtered where the package loads (it printed on every command and Snakemake run)."""
    code = "import discover.codecs.compressai_models, compressai.zoo, discover.discover_codec.model"
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit.script" not in proc.stderr
    # and without the package's filter the warning is there: the check can fail
    bare = subprocess.run(
        [sys.executable, "-c", "import compressai.zoo"], capture_output=True, text=True, env=env
    )
    assert "torch.jit.script" in bare.stderr


def test_tiled_decode_is_diffusers_tiled_decode():
    """Images above 1 MP decode in tiles, one row of tiles at a time: the same values as
    diffusers' own ``AutoencoderKL.tiled_decode`` at the same tile size and overlap."""
    import torch

    from discover.discover_codec.vae import load_vae, tiled_decode

    vae = load_vae(ROOT / "weights" / "discover-mini" / "vae")
    z = torch.randn(1, 4, 37, 53, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine = tiled_decode(vae, z, 16, 0.25)
        vae.tile_latent_min_size, vae.tile_sample_min_size, vae.tile_overlap_factor = 16, 128, 0.25
        reference = vae.tiled_decode(z).sample
    assert torch.equal(mine, reference)


def test_running_out_of_memory_is_a_message(tmp_path):
    """An encode that cannot get its memory exits 2 with a message naming the image and what
    the committed model needs, not an allocator traceback: the child process limits its own
    address space to what it holds after loading PyTorch, plus 200 MB."""
    from discover.datasets.synthetic_scenes import SceneGenerator

    image = tmp_path / "big.png"
    tile = SceneGenerator(0, "val", 256, 256, 2, 3).render(0)[0]
    Image.fromarray(np.tile(tile, (8, 8, 1))).save(image)  # 2048 x 2048
    child = f"""
import resource, sys
import torch, discover.discover_codec.model
from discover.cli import main
size = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = (size + 200_000) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(main(["encode", {str(image)!r}, "-o", {str(tmp_path / "o.dsc")!r},
               "--model", "discover-mini", "--rate", "8"]))
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{image}: out of memory encoding a 2048x2048 image" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.dsc").exists()
