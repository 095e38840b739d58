"""The DISCOVER codec: model shapes and sizes, masked entropy coding, the .dsc container."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from discover.discover_codec.bitstream import CHECK_BYTES, HUMAN, VERSION, Container, Part
from discover.discover_codec.fuzz import fuzz
from discover.discover_codec.masks import boxes_to_mask, decode_mask, encode_mask, rectangles
from discover.discover_codec.model import DiscoverModel, masks_from_boxes, portable_state
from discover.discover_codec.net import FULL, MINI, DiscoverCodecNet, latent_grid, pad_image
from discover.discover_codec.vae import TINY_VAE_CONFIG
from discover.errors import BitstreamError


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vae")
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, vae_dir):
    """An untrained mini codec saved like a trained one (state dict + sidecar)."""
    import json

    torch.manual_seed(0)
    net = DiscoverCodecNet(MINI)
    net.update()
    d = tmp_path_factory.mktemp("codec")
    torch.save(portable_state(net), d / "r1.pth.tar")
    (d / "r1.json").write_text(json.dumps({"codec": MINI.to_dict()}))
    return d / "r1.pth.tar", vae_dir


@pytest.fixture(scope="module")
def model(model_files):
    weights, vae = model_files
    return DiscoverModel.load(weights, vae, "discover-test", "1")


def scene(h=100, w=140, seed=0):
    from discover.datasets.synthetic_scenes import SceneGenerator

    img = SceneGenerator(seed, "val", min(h, w), max(h, w), 2, 3).render(0)[0]
    return np.ascontiguousarray(img[:h, :w])


def true_y_hat(model, image):
    with torch.no_grad():
        return torch.round(
            model.net.g_a(pad_image(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255))
        )


# -- the network ------------------------------------------------------------------------------
def test_full_model_is_elic_plus_m_and_latent_synthesis():
    from compressai.models import Elic2022Official

    elic = Elic2022Official()
    net = DiscoverCodecNet(FULL)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(net.g_a) == count(elic.g_a) == 7_337_792
    assert count(net.latent_codec) == count(elic.latent_codec) == 17_398_933
    assert count(net.M) == 2_175_552
    assert count(net.g_s) == 11_408_644
    # ELIC's encoder side loads into DISCOVER by name: an ELIC checkpoint initialises it.
    state = {k: v for k, v in elic.state_dict().items() if not k.startswith("g_s.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.startswith(("g_s.", "M.")) for k in missing)


@pytest.mark.parametrize("size", [(64, 64), (100, 140), (37, 203)])
def test_synthesis_has_the_shape_of_the_vae_latent(model, size):
    image = scene(*size)
    x = pad_image(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    with torch.no_grad():
        out = model.net(x)
        z_c = model.vae.encode(x * 2 - 1).latent_dist.mode()
    assert out["z_c_hat"].shape == z_c.shape == (1, 4, x.shape[2] // 8, x.shape[3] // 8)


# -- round trips ------------------------------------------------------------------------------
def test_every_consumer_decodes_exactly_its_part_from_its_own_bytes(model):
    image = scene()
    h, w = image.shape[:2]
    boxes = {"detection": [[5, 5, 60, 40]], "segmentation": [[40, 20, 90, 70]]}
    masks = masks_from_boxes(boxes, h, w)
    container = model.encode(image, masks)
    y_hat = true_y_hat(model, image)
    for task, mask in masks.items():
        cut = Container.from_bytes(container.for_consumer(task).to_bytes())
        assert cut.rest is None and cut.tasks == [task]
        y_task, _ = model.decode_y(cut, task)
        assert torch.equal(y_task, y_hat * torch.from_numpy(mask))
    y_all, _ = model.decode_y(Container.from_bytes(container.to_bytes()), HUMAN)
    assert torch.equal(y_all, y_hat)
    sizes = container.consumer_bytes()
    assert sizes[HUMAN] == len(container.to_bytes())
    assert sizes["detection"] < sizes[HUMAN] and sizes["segmentation"] < sizes[HUMAN]


def test_a_task_stream_needs_nothing_but_itself_and_z(model):
    image = scene(seed=3)
    masks = masks_from_boxes({"detection": [[10, 10, 50, 50]]}, *image.shape[:2])
    container = model.encode(image, masks)
    alone = Container(
        container.model_id,
        container.weights,
        container.rate,
        container.height,
        container.width,
        container.z_stream,
        [container.part("detection")],
        None,
        device=container.device,
        z_check=container.z_check,
    )
    y_task, _ = model.decode_y(alone, "detection")
    assert torch.equal(y_task, true_y_hat(model, image) * torch.from_numpy(masks["detection"]))
    with pytest.raises(BitstreamError, match="human consumer needs all"):
        model.decode_y(alone, HUMAN)
    with pytest.raises(BitstreamError, match="no part for task 'classification'"):
        model.decode_y(container, "classification")


def test_decoded_image_has_the_input_size(model):
    image = scene(75, 121)
    out = model.decode(model.encode(image), HUMAN)
    assert out.shape == image.shape and out.dtype == np.uint8


def test_same_input_gives_identical_bytes_and_a_fresh_process_decodes_bit_exactly(
    model, model_files, tmp_path
):
    image = scene(seed=5)
    masks = masks_from_boxes({"detection": [[0, 30, 70, 60]]}, *image.shape[:2])
    data = model.encode(image, masks).to_bytes()
    assert model.encode(image, masks).to_bytes() == data
    (tmp_path / "a.dsc").write_bytes(data)
    np.save(tmp_path / "image.npy", image)
    weights, vae = model_files
    script = f"""
import numpy as np, torch
torch.set_num_threads(1)
from discover.discover_codec.model import DiscoverModel, masks_from_boxes
from discover.discover_codec.fuzz import fuzz
from discover.discover_codec.bitstream import Container
m = DiscoverModel.load({str(weights)!r}, {str(vae)!r}, "discover-test", "1")
image = np.load({str(tmp_path / "image.npy")!r})
masks = masks_from_boxes({{"detection": [[0, 30, 70, 60]]}}, *image.shape[:2])
open({str(tmp_path / "b.dsc")!r}, "wb").write(m.encode(image, masks).to_bytes())
c = Container.from_bytes(open({str(tmp_path / "a.dsc")!r}, "rb").read())
for consumer in ("detection", "human"):
    y, z = m.decode_y(c, consumer)
    torch.save({{"y": y, "z": z}}, {str(tmp_path)!r} + f"/{{consumer}}.pt")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert (tmp_path / "b.dsc").read_bytes() == data
    container = Container.from_bytes(data)
    for consumer in ("detection", HUMAN):
        y, z = model.decode_y(container, consumer)
        other = torch.load(tmp_path / f"{consumer}.pt")
        assert torch.equal(other["y"], y) and torch.equal(other["z"], z)


# -- masks --------------------------------------------------------------------------------------
def test_boxes_select_every_latent_cell_they_touch():
    mask = boxes_to_mask([[15, 0, 2, 17]], (4, 4), (64, 64))
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:2] = True
    assert np.array_equal(mask, expected)
    assert not boxes_to_mask([[100, 100, 5, 5]], (4, 4), (64, 64)).any()  # outside: clipped


def test_mask_coding_is_exact_and_compact():
    rng = np.random.default_rng(0)
    for trial in range(200):
        h, w = rng.integers(1, 40, size=2)
        if trial % 3 == 0:
            mask = rng.random((h, w)) < rng.random()
        else:
            boxes = [
                [
                    rng.uniform(0, 16 * w),
                    rng.uniform(0, 16 * h),
                    rng.uniform(1, 300),
                    rng.uniform(1, 300),
                ]
                for _ in range(rng.integers(0, 6))
            ]
            mask = boxes_to_mask(boxes, (h, w), (16 * h, 16 * w))
        code = encode_mask(mask)
        assert np.array_equal(decode_mask(code, (h, w)), mask)
        if trial % 3:
            assert len(code) <= 2 + 4 * 2 * len(rectangles(mask))
    box_mask = boxes_to_mask([[30, 40, 200, 120]], (32, 48), (512, 768))
    assert len(encode_mask(box_mask)) <= 6


@pytest.mark.parametrize("size", [(1, 1), (1, 4096), (4321, 1), (17, 5), (4097, 4099), (65536, 3)])
def test_header_survives_any_image_size(size):
    h, w = size
    grid = latent_grid(h, w)
    rng = np.random.default_rng(h * w)
    mask = rng.random(grid) < 0.3
    parts = [Part(("det", "seg"), mask, b"abc", b"\1\2\3\4")]
    c = Container("m", b"\x01" * 8, "4", h, w, b"zz", parts, b"rest", "cpu:x", b"\5" * 4, b"\6" * 4)
    back = Container.from_bytes(c.to_bytes())
    assert (back.height, back.width, back.grid) == (h, w, grid)
    assert back.to_bytes() == c.to_bytes() and back.device == "cpu:x"
    assert np.array_equal(back.part("seg").mask, mask) and back.part("det").check == b"\1\2\3\4"
    assert back.rest == b"rest" and back.z_stream == b"zz"


@pytest.mark.parametrize("size", [(1, 1), (3, 67), (65, 2)])
def test_tiny_and_odd_images_round_trip(model, size):
    image = scene(40, 80)[: size[0], : size[1]]
    image = np.ascontiguousarray(np.resize(image, (*size, 3)))
    c = Container.from_bytes(model.encode(image).to_bytes())
    y, _ = model.decode_y(c, HUMAN)
    assert torch.equal(y, true_y_hat(model, image))
    assert model.decode(c, HUMAN).shape == image.shape


# -- robustness --------------------------------------------------------------------------------
def test_mutated_streams_raise_bitstream_error_never_a_crash_or_a_wrong_image(model):
    image = scene(seed=7)
    masks = masks_from_boxes({"detection": [[10, 10, 60, 50]]}, *image.shape[:2])
    data = model.encode(image, masks).to_bytes()
    report = fuzz(model, data, np.random.default_rng(0), 600)
    assert report.crashes == 0 and report.wrong_decodes == 0
    assert report.rejected >= 500 and report.rejected + report.identical == report.cases


def test_wrong_version_model_and_weights_are_named(model):
    image = scene(seed=2)
    c = model.encode(image)
    data = bytearray(c.to_bytes())
    data[4] = VERSION + 1
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match=f"format version {VERSION + 1}"):
        Container.from_bytes(bytes(data), "x.dsc")
    with pytest.raises(BitstreamError, match="not a DISCOVER stream"):
        Container.from_bytes(b"\x89PNG\r\n\x1a\n" + bytes(data[8:]), "x.png")
    other = Container(**{**c.__dict__, "model_id": "discover-full"})
    with pytest.raises(BitstreamError, match="encoded with model 'discover-full'"):
        model.decode_y(other, HUMAN, "y.dsc")
    other = Container(**{**c.__dict__, "weights": b"\x00" * 8})
    with pytest.raises(BitstreamError, match="weights 0000000000000000"):
        model.decode_y(other, HUMAN, "y.dsc")


def test_task_stream_shrinks_with_the_masked_fraction(model):
    image = scene(192, 256, seed=11)
    grid = latent_grid(*image.shape[:2])
    sizes = {}
    for frac in (0.25, 0.5, 1.0):
        mask = np.zeros(grid, bool)
        mask[:, : round(frac * grid[1])] = True
        c = model.encode(image, {"t": mask})
        sizes[frac] = len(c.part("t").stream)
    assert sizes[0.25] < sizes[0.5] < sizes[1.0]
    for frac in (0.25, 0.5):
        assert 0.4 * frac <= sizes[frac] / sizes[1.0] <= 2.0 * frac


def test_mutants_with_a_repaired_checksum_never_crash_the_parser_or_the_entropy_decoder(model):
    image = scene(seed=8)
    masks = masks_from_boxes({"detection": [[20, 10, 60, 50]]}, *image.shape[:2])
    data = model.encode(image, masks).to_bytes()
    report = fuzz(model, data, np.random.default_rng(1), 300, repair_checksum=True)
    # the checks of the decoded values refuse what the CRC cannot see
    assert report.crashes == 0 and report.wrong_decodes == 0
    assert report.rejected > 0 and report.decoded > 0  # both paths were exercised


# -- shared parts and checks -------------------------------------------------------------------
def test_tasks_with_identical_masks_share_one_stream_and_each_receives_it(model):
    image = scene(seed=4)
    h, w = image.shape[:2]
    boxes = {"detection": [[5, 5, 60, 40]], "segmentation": [[5, 5, 60, 40]]}
    masks = masks_from_boxes(boxes, h, w)
    shared = model.encode(image, masks)
    alone = model.encode(image, {"detection": masks["detection"]})
    assert len(shared.parts) == 1 and shared.parts[0].names == ("detection", "segmentation")
    # the human consumer pays the object region once: the shared container is the one-task
    # container plus the second name
    assert len(shared.to_bytes()) == len(alone.to_bytes()) + 1 + len(b"segmentation")
    y_hat = true_y_hat(model, image)
    for task in boxes:
        cut = Container.from_bytes(shared.for_consumer(task).to_bytes())
        assert cut.tasks == [task]
        assert len(cut.to_bytes()) == len(alone.for_consumer("detection").to_bytes()) + len(
            task
        ) - len("detection")
        y, _ = model.decode_y(cut, task)
        assert torch.equal(y, y_hat * torch.from_numpy(masks[task]))
    assert torch.equal(model.decode_y(shared, HUMAN)[0], y_hat)


def test_a_stream_decoded_with_other_entropy_parameters_is_refused_naming_both_devices(
    model_files,
):
    """Perturbed entropy parameters stand in for another device's float arithmetic: the bytes
    are valid (the CRC holds), the decoded values are not the encoded ones."""
    weights, vae = model_files
    encoder = DiscoverModel.load(weights, vae, "discover-test", "1")
    image = scene(seed=9)
    masks = masks_from_boxes({"detection": [[10, 10, 80, 60]]}, *image.shape[:2])
    data = encoder.encode(image, masks).to_bytes()
    c = Container.from_bytes(data, "a.dsc")
    assert c.device == encoder_kind() and len(c.z_check) == CHECK_BYTES
    other = DiscoverModel.load(weights, vae, "discover-test", "1")
    with torch.no_grad():  # shift the hyper-synthesis output: other means and scales
        convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        last = [m for m in other.net.hyper.h_s.modules() if isinstance(m, convs)][-1]
        last.bias += 0.3
    refused = 0
    for consumer in ("detection", HUMAN):
        with pytest.raises(BitstreamError) as info:
            other.decode_y(c, consumer, "a.dsc")
        message = str(info.value)
        assert "a.dsc" in message and "decodes to other values" in message
        assert f"encoded on {c.device}" in message and f"decoded on {encoder_kind()}" in message
        refused += 1
        # the untouched decoder still decodes the same bytes exactly
        y, _ = encoder.decode_y(c, consumer)
        expected = true_y_hat(encoder, image)
        if consumer != HUMAN:
            expected = expected * torch.from_numpy(masks[consumer])
        assert torch.equal(y, expected)
    assert refused == 2


def encoder_kind() -> str:
    import platform

    return f"cpu:{platform.machine()}"
