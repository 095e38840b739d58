"""Human-perception metrics: LPIPS, DISTS, FID/KID equal their reference libraries, FID patches
follow the HiFiC protocol, and every pretrained weight comes from the weights cache.

No pretrained weight can be downloaded here, so the tests write randomly initialised backbones
under the exact file names the cache expects: what is checked is that our functions compute
what the libraries compute with those weights, not the published numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from cleanfid import fid
from PIL import Image

from discover.errors import WeightsMissingError
from discover.metrics.fid import compute_fid_kid, inception_weight, write_fid_patches
from discover.metrics.patches import fid_patches
from discover.metrics.perceptual import (
    dists_distance,
    lpips_backbone_weight,
    lpips_distance,
    piq_dists_weight,
    torchvision_weight,
)

from .conftest import save_random_backbone

CPU = torch.device("cpu")
# Measured DISTS_pytorch - piq on images up to 256 px: -1.2e-7 to -3.0e-7. DISTS_pytorch divides
# alpha/beta by their sum (1 - 2.4e-7 for the shipped weights) and piq does not, which lowers its
# score by ~2.4e-7; the rest is float32 round-off. 1e-6 is a few times that, far below a
# meaningful DISTS difference (~1e-3).
DISTS_BACKENDS_TOL = 1e-6


def _pair(h: int, w: int, noise: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, size=(h, w, 3)).astype(np.float64)
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1)) / 3  # some spatial correlation
    out = np.clip(ref + rng.normal(0, noise, ref.shape), 0, 255)
    return ref.astype(np.uint8), out.astype(np.uint8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights-cache")
    save_random_backbone("alexnet", root / lpips_backbone_weight("alex").filename, seed=1)
    save_random_backbone("vgg16", root / torchvision_weight("vgg16").filename, seed=2)
    # piq's released alpha/beta cannot be downloaded here: the DISTS authors' alpha/beta (shipped
    # with DISTS_pytorch, where its code reads them) under piq's file name, in piq's format.
    alpha_beta = torch.load(Path(sys.prefix) / "weights.pt")
    torch.save(
        {"alpha": alpha_beta["alpha"], "beta": alpha_beta["beta"]},
        root / piq_dists_weight().filename,
    )
    return root


# -- LPIPS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("net", ["alex", "vgg"])
@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # pnet_rand below
def test_lpips_equals_lpips_package_with_the_cached_backbone(cache, net):
    ref, out = _pair(64, 96)
    hub_dir = torch.hub.get_dir()
    value = lpips_distance(ref, out, net, cache=cache)
    assert torch.hub.get_dir() == hub_dir  # the redirect to the cache is undone
    # The package itself, random trunk (no download), then the cached backbone loaded by hand.
    direct = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    state = torch.load(cache / lpips_backbone_weight(net).filename)
    direct.net.load_state_dict(
        {k: state["features." + k.split(".", 1)[1]] for k in direct.net.state_dict()}
    )
    with torch.no_grad():
        expected = float(direct(lpips.im2tensor(ref), lpips.im2tensor(out)))
    assert value > 0
    assert value == pytest.approx(expected, abs=1e-6)
    assert lpips_distance(ref, ref, net, cache=cache) == pytest.approx(0.0, abs=1e-6)


def test_missing_lpips_backbone_names_the_weight_and_the_fix(tmp_path):
    ref, out = _pair(32, 32)
    with pytest.raises(WeightsMissingError, match="alexnet-owt-7be5be79.pth") as err:
        lpips_distance(ref, out, "alex", cache=tmp_path)
    assert "snakemake fetch_weights" in str(err.value)


# -- DISTS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 96), (256, 256)])
def test_dists_backends_agree_on_the_same_weights(cache, size):
    # Short side <= 256: piq does not resize, so both see the same tensors.
    ref, out = _pair(*size)
    authors = dists_distance(ref, out, backend="dists_pytorch", cache=cache)
    via_piq = dists_distance(ref, out, backend="piq", cache=cache)
    assert authors > 0.01
    assert authors == pytest.approx(via_piq, abs=DISTS_BACKENDS_TOL)
    assert dists_distance(ref, ref, cache=cache) == pytest.approx(0.0, abs=1e-5)


def test_missing_piq_dists_weights_names_the_file(cache, tmp_path):
    vgg = torchvision_weight("vgg16").filename
    (tmp_path / vgg).symlink_to(cache / vgg)
    ref, out = _pair(32, 32)
    with pytest.raises(WeightsMissingError, match="dists_weights.pt") as err:
        dists_distance(ref, out, backend="piq", cache=tmp_path)
    assert "snakemake fetch_weights" in str(err.value)


# -- FID / KID -----------------------------------------------------------------------------------
def _small_extractor():
    """A fixed random CNN: clean-fid batches (N, 3, 299, 299) in [0, 255] -> (N, 16) features.

    16 dimensions < 20 images per folder, so the feature covariances have full rank.
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 7, stride=4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()

    def extract(batch: torch.Tensor) -> torch.Tensor:
        return net(batch / 255.0)

    return extract


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fid-images")
    for name in ("ref", "out"):
        (root / name).mkdir()
    for k in range(20):
        ref, out = _pair(64, 64, noise=30, seed=k)
        # darker and lower-contrast outputs: distributions far enough apart that FID and KID
        # are not dominated by float32 round-off of the features
        out = np.clip(out * 0.7 + 20, 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(root / "ref" / f"{k:02d}.png")
        Image.fromarray(out).save(root / "out" / f"{k:02d}.png")
    return root / "ref", root / "out"


def test_fid_and_kid_equal_clean_fid_with_a_custom_extractor(image_dirs):
    ref_dir, out_dir = (str(d) for d in image_dirs)
    extractor = _small_extractor()
    result = compute_fid_kid(ref_dir, out_dir, feature_extractor=extractor, batch_size=8)

    expected_fid = fid.compute_fid(
        ref_dir,
        out_dir,
        custom_feat_extractor=extractor,
        mode="clean",
        num_workers=0,
        batch_size=8,
        device=CPU,
        verbose=False,
    )
    options = dict(num_workers=0, batch_size=8, device=CPU, mode="clean", verbose=False)
    feats_ref = fid.get_folder_features(ref_dir, extractor, **options)
    feats_out = fid.get_folder_features(out_dir, extractor, **options)
    # kernel_distance draws its subsets from numpy's global generator; compute_fid_kid seeds it
    # with kid_seed=0, so the direct call gets the same subsets
    np.random.seed(0)
    expected_kid = fid.kernel_distance(feats_ref, feats_out)

    assert result["fid"] > 0 and result["kid"] > 0
    assert result["fid"] == pytest.approx(expected_fid, rel=1e-9)
    assert result["kid"] == pytest.approx(expected_kid, rel=1e-9)
    assert (result["mode"], result["n_ref"], result["n_out"]) == ("clean", 20, 20)


def test_missing_inception_names_the_weight_and_the_fix(image_dirs, tmp_path):
    ref_dir, out_dir = image_dirs
    with pytest.raises(WeightsMissingError, match=inception_weight().filename) as err:
        compute_fid_kid(ref_dir, out_dir, cache=tmp_path)
    assert "snakemake fetch_weights" in str(err.value)
    assert inception_weight().filename == "inception-2015-12-05.pt"


# -- patches -------------------------------------------------------------------------------------
def test_patch_grid_counts_and_pixels():
    rng = np.random.default_rng(0)
    square = rng.integers(0, 256, size=(768, 768, 3), dtype=np.uint8)
    assert len(fid_patches(square)) == 9
    assert len(fid_patches(square, shifted=True)) == 13

    wide = rng.integers(0, 256, size=(767, 1000, 3), dtype=np.uint8)
    assert len(fid_patches(wide)) == 2 * 3
    patches = fid_patches(wide, shifted=True)
    assert len(patches) == 2 * 3 + 2 * 3  # shifted grid: rows 128, 384; columns 128, 384, 640
    np.testing.assert_array_equal(patches[4], wide[256:512, 256:512])  # row 1, column 1
    np.testing.assert_array_equal(patches[6], wide[128:384, 128:384])  # shifted pass starts
    np.testing.assert_array_equal(patches[-1], wide[384:640, 640:896])


def test_write_fid_patches_writes_every_patch_losslessly(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "images"
    src.mkdir()
    square = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    wide = rng.integers(0, 256, size=(95, 130, 3), dtype=np.uint8)
    Image.fromarray(square).save(src / "a.png")
    Image.fromarray(wide).save(src / "b.png")

    dest = tmp_path / "patches"
    count = write_fid_patches(src, dest, size=32, shifted=True)
    files = sorted(p.name for p in dest.iterdir())
    # a: 3x3 + 2x2; b: 2x4 + 2x3 (shifted by 16: rows 16, 48; columns 16, 48, 80)
    assert count == len(files) == 13 + 14
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
    patch = np.asarray(Image.open(dest / "b__p05.png"))
    np.testing.assert_array_equal(patch, wide[32:64, 32:64])


def test_the_written_out_weight_urls_are_the_packages():
    # the plan lists these weights without importing torchvision, piq, clean-fid or torch
    import piq
    import torchvision

    from discover.metrics import weights

    for arch, enum in weights.LPIPS_BACKBONES.values():
        assert weights.TORCHVISION_URLS[arch] == getattr(torchvision.models, enum).IMAGENET1K_V1.url
    assert weights.PIQ_DISTS_URL == piq.DISTS._weights_url
    from cleanfid.downloads_helper import inception_url

    assert weights.INCEPTION_URL == inception_url
