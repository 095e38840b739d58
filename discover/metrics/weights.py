"""The official weights the metrics read from the weights cache, named without importing the
metric packages (torch): the plan and the table jobs list them at parse time.

The URLs are those the packages download from, written out (the catalog of metrics reads them
without importing torch or clean-fid); tests/test_perceptual_metrics.py holds them against
``torchvision.models.<Enum>.IMAGENET1K_V1.url``, ``piq.DISTS._weights_url`` and clean-fid's
``inception_url``.
"""

from __future__ import annotations

from discover.weights import WeightSpec

# lpips' ``net`` names -> (torchvision architecture, its weight enum) of the backbone it builds
# with pretrained=True
LPIPS_BACKBONES = {
    "alex": ("alexnet", "AlexNet_Weights"),
    "vgg": ("vgg16", "VGG16_Weights"),
    "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
}

#: torchvision architecture -> the URL of its IMAGENET1K_V1 weights
TORCHVISION_URLS = {
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeezenet1_1": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}

#: the TorchScript Inception clean-fid downloads (``cleanfid.downloads_helper.inception_url``)
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
#: the alpha/beta file ``piq.DISTS`` downloads
PIQ_DISTS_URL = (
    "https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt"
)


def inception_weight() -> WeightSpec:
    """The TorchScript Inception clean-fid downloads (``cleanfid.downloads_helper``)."""
    return WeightSpec("clean-fid/inception-2015-12-05", INCEPTION_URL)


def torchvision_weight(arch: str) -> WeightSpec:
    """torchvision's ImageNet weights (IMAGENET1K_V1, what ``pretrained=True`` loads)."""
    if arch not in TORCHVISION_URLS:
        raise ValueError(
            f"no torchvision weight for {arch!r} (one of {', '.join(TORCHVISION_URLS)})"
        )
    return WeightSpec(f"torchvision/{arch}", TORCHVISION_URLS[arch])


def lpips_backbone_weight(net: str = "alex") -> WeightSpec:
    """The backbone weight ``lpips.LPIPS(net=net)`` loads."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS net {net!r} (one of {', '.join(LPIPS_BACKBONES)})")
    return torchvision_weight(LPIPS_BACKBONES[net][0])


def piq_dists_weight() -> WeightSpec:
    """piq's DISTS alpha/beta file (the URL ``piq.DISTS`` downloads from)."""
    return WeightSpec("piq/dists", PIQ_DISTS_URL)


def perceptual_weight_specs(lpips_net: str = "alex") -> list[WeightSpec]:
    """Every cached weight LPIPS (with ``lpips_net``) and both DISTS backends load."""
    specs = [lpips_backbone_weight(lpips_net), torchvision_weight("vgg16"), piq_dists_weight()]
    return list({spec.filename: spec for spec in specs}.values())
