"""Model registry: shapes for every name, frozen backbones, errors, and the offline ImageNet check."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ddlib import models
from ddlib.utils import ParamError

TIMM_NAME = "resnet10t"  # a small timm model (random weights in tests: nothing is downloaded)


@pytest.mark.parametrize("name,kw,in_ch,size,dim", [
    ("convnet", {}, 3, 32, 128 * 4 * 4),
    ("convnet", {"width": 16, "depth": 2}, 1, 28, 16 * 7 * 7),
    ("resnet18", {}, 3, 32, 512),
    ("resnet18", {}, 1, 16, 512),
    (f"timm:{TIMM_NAME}", {}, 3, 32, 512),
])
def test_create_shapes(name: str, kw: dict, in_ch: int, size: int, dim: int) -> None:
    m = models.create(name, 7, in_ch, size, **kw)
    x = torch.rand(2, in_ch, size, size)
    assert m.features(x).shape == (2, dim) and m.feature_dim == dim
    assert isinstance(m.head, torch.nn.Linear) and m.head.out_features == 7
    out = m(x)
    assert out.shape == (2, 7)
    assert torch.allclose(out, m.head(m.features(x)))


def test_convnet_is_the_dd_standard() -> None:
    m = models.create("convnet", 10)
    kinds = [type(layer).__name__ for layer in m.body]
    assert kinds == ["Conv2d", "GroupNorm", "ReLU", "AvgPool2d"] * 3
    norms = [layer for layer in m.body if isinstance(layer, torch.nn.GroupNorm)]
    assert all(n.num_groups == n.num_channels == 128 and n.affine for n in norms)  # instance norm


def test_resnet18_cifar_stem() -> None:
    m = models.create("resnet18", 10)
    conv = m.stem[0]
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    assert not any(isinstance(mod, torch.nn.MaxPool2d) for mod in m.modules())
    assert 11_000_000 < sum(p.numel() for p in m.parameters()) < 11_300_000  # the usual 11.2 M


def test_normalisation_is_inside_and_saved() -> None:
    m = models.create("convnet", 3, 1, 8, mean=[0.3], std=[0.2], depth=1, width=4)
    assert torch.allclose(m.normalize(torch.full((1, 1, 8, 8), 0.5)), torch.ones(1, 1, 8, 8))
    assert "normalize.mean" in m.state_dict()
    u = (torch.rand(2, 1, 8, 8) * 255).to(torch.uint8)
    assert torch.allclose(m(u), m(u.float() / 255))


def test_bad_names_and_params_raise() -> None:
    with pytest.raises(ParamError, match="convnet.*resnet18.*efficientnet-lite0.*timm"):
        models.create("vgg11", 10)
    with pytest.raises(ParamError, match="backbone"):
        models.backbone("vgg11")
    with pytest.raises(ParamError, match="timm model"):
        models.create("timm:not_a_model_xyz", 10)
    with pytest.raises(ParamError, match="num_classes"):
        models.create("convnet", 0)
    with pytest.raises(ParamError, match="DDLIB_OFFLINE|weights"):
        models.backbone(f"timm:{TIMM_NAME}", pretrained=True)  # offline in tests, no weights file
    with pytest.raises(ParamError, match="weights"):
        models.create(f"timm:{TIMM_NAME}", 3, weights="/no/such/file.pth")
    with pytest.raises(ParamError, match="mean/std"):
        models.create("convnet", 3, 3, mean=[0.1, 0.2])
    with pytest.raises(ParamError, match="unexpected keyword"):
        models.create("resnet18", 3, width=8)


def test_timm_local_weights_file(tmp_path: Path) -> None:
    import timm

    src = timm.create_model(TIMM_NAME, pretrained=False)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    m = models.create(f"timm:{TIMM_NAME}", 4, weights=path)
    assert torch.equal(m.body.conv1[0].weight, src.conv1[0].weight)
    b = models.backbone(f"timm:{TIMM_NAME}", weights=path, image_size=48)
    x = torch.rand(2, 3, 20, 20)
    with torch.no_grad():
        src.eval()
        ref = src.forward_head(src.forward_features(m.normalize(torch.nn.functional.interpolate(
            x, size=(48, 48), mode="bilinear", align_corners=False))), pre_logits=True)
    assert torch.allclose(b(x), ref, atol=1e-5)


@pytest.mark.parametrize("name", ["convnet", "resnet18", f"timm:{TIMM_NAME}"])
def test_backbone_frozen_resizing_and_differentiable_in_input(name: str) -> None:
    b = models.backbone(name, pretrained=False, image_size=24)
    assert all(not p.requires_grad for p in b.parameters())
    b.train()
    assert not b.training and not any(mod.training for mod in b.modules())
    x = torch.rand(3, 3, 40, 30, requires_grad=True)  # any H x W is resized inside
    f = b(x)
    assert f.shape == (3, b.feature_dim) and b.image_size == 24
    f.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_as_backbone_wraps_an_in_house_encoder() -> None:
    enc = models.create("convnet", 5, 1, 16, width=8, depth=2)
    b = models.as_backbone(enc, 16)
    assert b(torch.rand(2, 1, 28, 28)).shape == (2, enc.feature_dim)
    assert b.feature_dim == enc.feature_dim and b.image_size == 16
    with pytest.raises(ParamError):
        models.as_backbone(torch.nn.Linear(3, 3), 16)


# ----------------------------------------------------------------------------- EfficientNet-Lite0
def _foolbox_imagenet() -> tuple[torch.Tensor, torch.Tensor]:
    """foolbox's 20 ImageNet samples (label in the file name), shorter side 256, centre crop 224."""
    from PIL import Image

    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the test dependency foolbox is not installed (pip install foolbox)")
    files = sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("imagenet_*"))
    assert len(files) == 20
    images, labels = [], []
    for f in files:
        im = Image.open(f).convert("RGB")
        s = 256 / min(im.size)
        im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BICUBIC)
        left, top = (im.size[0] - 224) // 2, (im.size[1] - 224) // 2
        im = im.crop((left, top, left + 224, top + 224))
        images.append(torch.from_numpy(np.array(im)).permute(2, 0, 1))
        labels.append(int(f.stem.split("_")[-1]))
    return torch.stack(images), torch.tensor(labels)


def test_efficientnet_lite0_classifies_real_imagenet_offline() -> None:
    x, y = _foolbox_imagenet()
    m = models.create("efficientnet-lite0", 1000).eval()
    with torch.no_grad():
        feats = m.features(x.float() / 255)
        pred = m.head(feats).argmax(1)
    assert feats.shape == (20, 1280)
    correct = int((pred == y).sum())
    assert correct >= 14, f"EfficientNet-Lite0 got {correct}/20 of foolbox's ImageNet samples"
    b = models.backbone("efficientnet-lite0")
    with torch.no_grad():
        assert torch.allclose(b(x[:2].float() / 255), feats[:2], atol=1e-4)


def test_efficientnet_lite0_backbone_small_input() -> None:
    b = models.backbone("efficientnet-lite0")
    assert b.feature_dim == 1280 and b.image_size == 224
    assert all(not p.requires_grad for p in b.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    b(x).sum().backward()
    assert x.grad.abs().sum() > 0
    m = models.create("efficientnet-lite0", 10, pretrained=False)  # a new 10-class head
    assert m(torch.rand(1, 3, 32, 32)).shape == (1, 10)
