"""The registry of networks (ddlib.models): shapes for every name, the students, pretrained weights and where
they come from, frozen backbones, errors, the offline ImageNet check, and a toy backbone registered in one place
and used by every consumer (the CLI's select, evaluate, distill and evaluate-synthetic)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddlib import models
from ddlib.nets.layers import Classifier, Normalize, as_backbone, norm_stats, resize
from ddlib.utils import ParamError

TIMM_NAME = "resnet10t"  # a small timm model (random weights in tests: nothing is downloaded)


@pytest.mark.parametrize("name,kw,in_ch,size,dim", [
    ("convnet", {}, 3, 32, 128 * 4 * 4),
    ("convnet", {"width": 16, "depth": 2}, 1, 28, 16 * 7 * 7),
    ("resnet18", {}, 3, 32, 512),
    ("resnet18", {}, 1, 16, 512),
    ("resnet18", {"width": 16}, 1, 28, 128),
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
        models.create("resnet18", 3, depth=8)
    with pytest.raises(ParamError, match="pretrained=True"):
        models.create("convnet", 3, pretrained=True)


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
    b = as_backbone(enc, 16)
    assert b(torch.rand(2, 1, 28, 28)).shape == (2, enc.feature_dim)
    assert b.feature_dim == enc.feature_dim and b.image_size == 16
    with pytest.raises(ParamError):
        as_backbone(torch.nn.Linear(3, 3), 16)


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


# ----------------------------------------------------------------------------- the registry
def test_every_declared_network_builds_as_declared() -> None:
    """Each spec of the registry builds (random weights) with the declared pooled feature size, input size and
    channels; gray 1-channel images reach an RGB network repeated to 3 channels."""
    x = torch.rand(2, 1, 12, 12)
    for name, spec in models.BACKBONES.items():
        m = models.create(name, 5, 1, 12, pretrained=False if spec.weights else None).eval()
        assert m.embedding_dim == spec.feature_dim, name
        assert m(x).shape == (2, 5), name
        if spec.input_size is not None:
            assert m.image_size == spec.input_size, name
        if spec.channels == 3:
            assert m.normalize.mean.shape[1] == 3, name
    assert models.names()[-1] == "timm:<name>" and set(models.pretrained_names()) == {
        "resnet18-imagenet", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}


def test_resnet18_width_is_a_parameter() -> None:
    """The CIFAR ResNet-18 of base width w: channels w, 2w, 4w, 8w; width 64 is the usual net, key for key."""
    narrow, usual = models.create("resnet18", 10, 3, 32, width=16), models.create("resnet18", 10)
    assert narrow.stem[0].out_channels == 16 and narrow.feature_dim == 128 and narrow.head.in_features == 128
    assert list(narrow.state_dict()) == list(usual.state_dict())
    assert 600_000 < sum(p.numel() for p in narrow.parameters()) < 800_000  # 11.2 M / 16
    with pytest.raises(ParamError, match="width"):
        models.create("resnet18", 10, width=0)


def test_name_modifiers_are_checked() -> None:
    assert models.parse("efficientnet-lite0-frozen@64") == (models.BACKBONES["efficientnet-lite0"], True, 64)
    assert models.parse("resnet18") == (models.BACKBONES["resnet18"], False, None)
    assert models.check_model(f"timm:{TIMM_NAME}@48") == f"timm:{TIMM_NAME}@48"
    for bad, word in [("convnet-frozen", "no pretrained weights"), ("convnet@64", "own size"),
                      ("efficientnet-lite0@big", "pixels"), ("efficientnet-lite0@4", "input size"),
                      ("vgg11-frozen", "not known"), ("", "name")]:
        with pytest.raises(ParamError, match=word):
            models.check_model(bad)
    with pytest.raises(ParamError, match="pretrained"):
        models.create("efficientnet-lite0-frozen", 3, pretrained=False)


def test_frozen_pretrained_student_trains_its_head_only() -> None:
    """``efficientnet-lite0-frozen@64``: the ImageNet trunk at 64 px, gray images repeated, the weights' own
    normalisation (not the data's), only the head trainable, batch norm kept in eval mode by train()."""
    m = models.create("efficientnet-lite0-frozen@64", 10, 1, 28, mean=[0.3], std=[0.2])
    ref = models.create("efficientnet-lite0", 1000).eval()
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert torch.equal(m.net._conv_stem.weight, ref.net._conv_stem.weight) and m.image_size == 64
    m.train()
    assert m.head.training and not m.net.training and not any(mod.training for mod in m.net.modules())
    bn = m.net._bn0.running_mean.clone()
    x = torch.rand(4, 1, 28, 28)
    loss = F.cross_entropy(m(x), torch.arange(4))
    loss.backward()
    assert torch.equal(m.net._bn0.running_mean, bn) and m.head.weight.grad is not None
    with torch.no_grad():
        want = ref.net.extract_features(ref.normalize(resize(x.expand(-1, 3, -1, -1), 64))).mean(dim=(2, 3))
        assert torch.allclose(m.features(x), want, atol=1e-5)
    # evaluated every epoch on the same test images, the fixed trunk runs on them once
    from ddlib.train import predict

    runs, features = [], m.features
    m.features = lambda t: runs.append(len(t)) or features(t)
    first = predict(m, x, batch_size=3)
    m.head.weight.data.add_(1.0)  # a training step later: the head moved, the trunk did not
    second = predict(m, x, batch_size=3)
    assert runs == [3, 1] and torch.allclose(second, m.head(want)) and not torch.allclose(first, second)


def test_frozen_trunk_memo_holds_a_test_set_of_many_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo is capped in bytes, not batches: a test set read in 40 batches (more than a batch-count memo of
    16 held, which cycled and never hit) runs its trunk once over two evaluations; under a cap of 3 batches'
    features the oldest go first and each pass runs the trunk again."""
    from ddlib.train import predict

    m = models.create("efficientnet-lite0-frozen@32", 10, 1, 28, mean=[0.3], std=[0.2]).eval()
    x = torch.rand(40, 1, 28, 28)
    runs, features = [], m.features
    m.features = lambda t: runs.append(len(t)) or features(t)
    first = predict(m, x, batch_size=1)
    assert torch.equal(predict(m, x, batch_size=1), first) and len(runs) == 40
    monkeypatch.setattr(type(m), "MEMO_BYTES", 3 * m.feature_dim * 4)
    m.load_state_dict(m.state_dict())  # new weights: the memo is emptied
    runs.clear()
    predict(m, x, batch_size=1)
    predict(m, x, batch_size=1)
    assert len(runs) == 80 and len(m.__dict__["_trunk_memo"]) == 3
    assert m.__dict__["_trunk_memo_bytes"] == 3 * m.feature_dim * 4


def _torchvision_resnet18_file(tmp_path: Path, name: str = "resnet18-f37072fd.pth") -> tuple[Path, torch.nn.Module]:
    import torchvision

    tv = torchvision.models.resnet18().eval()  # random weights standing in for ImageNet's
    path = tmp_path / name
    torch.save(tv.state_dict(), path)
    return path, tv


def test_imagenet_resnet18_from_a_local_file(tmp_path: Path) -> None:
    """The reference's Stage-1 network (torchvision's ImageNet ResNet-18 at 224 px) from a weights file: a
    torchvision state_dict or a timm one; gray images repeated; ImageNet normalisation; resized to 224 inside."""
    import timm

    path, tv = _torchvision_resnet18_file(tmp_path)
    m = models.create("resnet18-imagenet", 10, 1, 28, weights=path).eval()
    assert m.image_size == 224 and m.feature_dim == 512
    x = torch.rand(2, 1, 28, 28)
    tv.fc = torch.nn.Identity()
    norm = Normalize(*norm_stats(None, None, 3, ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))))
    with torch.no_grad():
        assert torch.allclose(m.features(x), tv(norm(resize(x, 224))), atol=1e-4)
    src = timm.create_model("resnet18", pretrained=False)
    torch.save(src.state_dict(), tmp_path / "timm.pth")
    b = models.backbone("resnet18-imagenet", weights=tmp_path / "timm.pth", image_size=64)
    assert torch.equal(b.module.body.conv1.weight, src.conv1.weight) and b.image_size == 64


def test_pretrained_weights_are_found_in_the_weights_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, tv = _torchvision_resnet18_file(tmp_path)
    monkeypatch.setenv("DDLIB_WEIGHTS", str(tmp_path))
    m = models.create("resnet18-imagenet", 3)  # pretrained by default: the file put in the folder
    assert torch.equal(m.body.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)
    assert models.weights_key("resnet18-imagenet") == "resnet18-imagenet-imagenet"


def test_missing_weights_say_in_one_line_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DDLIB_OFFLINE", "1")
    with pytest.raises(ParamError) as e:
        models.create("resnet18-imagenet", 10)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("weights:")
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "weights") in msg and "weights=PATH" in msg
    from ddlib.encoders import EncoderConfig, build_encoder

    cfg = EncoderConfig(backbone="resnet18-imagenet", weights="imagenet", input_size=224)
    with pytest.raises(ParamError, match="resnet18-f37072fd.pth"):
        build_encoder(cfg, 10, 1, 28)


# ----------------------------------------------------------------------------- students
STUDENTS = {"convnet": dict(model="convnet", width=8, depth=2), "resnet18": dict(model="resnet18", width=8),
            "lite0": dict(model="efficientnet-lite0-frozen@32")}


@pytest.fixture(scope="module")
def tiny_kd() -> tuple:
    from ddlib import data
    from ddlib.bps.distill import TeacherConfig, train_teacher

    ds = data.load("digits", per_class=10, test_per_class=4)
    teacher = train_teacher(ds, TeacherConfig(model="convnet", width=8, depth=2, epochs=1, batch_size=32),
                            progress=False)
    return ds, teacher


@pytest.mark.parametrize("kind", list(STUDENTS))
def test_students_of_every_architecture_train_end_to_end(kind: str, tiny_kd: tuple) -> None:
    """KD from a tiny teacher, a few images, 1 epoch, through train_student; the grid stacks the ConvNet only."""
    from ddlib.bps import grid
    from ddlib.bps.distill import StudentConfig, train_student

    ds, teacher = tiny_kd
    cfg = StudentConfig(**STUDENTS[kind], epochs=1, last_epochs=1).resolved(ds.name, ds.num_classes, 1)
    idx = [int(torch.nonzero(ds.train_y == c)[0]) for c in range(ds.num_classes)]
    r = train_student(ds, idx, cfg, teacher, seed=0, progress=False)
    assert 0.0 <= r["best_acc"] <= 1.0 and len(r["accs"]) == 1 and r["seconds"] > 0
    assert grid.supports(cfg, "cpu") is (kind == "convnet")


def test_the_grid_trains_unstackable_students_one_by_one(tiny_kd: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddlib.baselines import SelectionInputs
    from ddlib.bps import grid
    from ddlib.bps import pipeline as P
    from ddlib.bps.distill import StudentConfig

    ds, teacher = tiny_kd
    stacked = []
    real = grid.train_students

    def spy(ds_, jobs, cfg, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        stacked.append(cfg.model)
        return real(ds_, jobs, cfg, *a, **k)

    monkeypatch.setattr(grid, "train_students", spy)
    inputs = SelectionInputs(embeddings=torch.randn(len(ds.train_y), 4), labels=ds.train_y)
    students = {k: StudentConfig(**v, epochs=1, last_epochs=1) for k, v in STUDENTS.items()}
    rows = P.evaluate_grid(ds, inputs, ["random"], [1], [0], students, teacher=teacher, progress=False)
    assert sorted(r["student"] for r in rows) == sorted(STUDENTS) and stacked == ["convnet"]


# ----------------------------------------------------------------------------- adding a network
class Toy(Classifier):
    """A network added by a user: one conv, average-pooled (``width``-d)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, mean=None, std=None,  # noqa: ANN001
                 width: int = 4) -> None:
        super().__init__()
        self.normalize = Normalize(*norm_stats(mean, std, in_channels))
        self.conv = torch.nn.Conv2d(in_channels, width, 3, padding=1)
        self.image_size, self.feature_dim = image_size, width
        self.head = torch.nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(self.normalize(x))).mean(dim=(2, 3))


def test_a_registered_network_reaches_every_consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One Spec registered: a classifier, a Stage-1 encoder, a frozen SFM backbone (``toy-random``) and a name in
    the CLI's help, run through ``python -m ddlib select / evaluate / distill / evaluate-synthetic``."""
    import json

    from ddlib.cli import main
    from ddlib.encoders import EncoderConfig
    from ddlib.sfm import backbones

    monkeypatch.setitem(models.BACKBONES, "toy", models.Spec("toy", Toy, 4, "a toy", options=("width",)))
    assert models.create("toy", 3, 1, 8, width=6).feature_dim == 6 and "toy" in models.names()
    assert EncoderConfig(backbone="toy").backbone == "toy" and "toy-random" in backbones.backbone_names()
    with pytest.raises(ParamError, match="taken"):
        models.register(models.BACKBONES["toy"])
    data = ["--dataset", "digits", "--per-class", "10", "--test-per-class", "3", "--quiet"]
    sel = tmp_path / "sel"
    assert main(["select", *data, "--method", "random", "--ipc", "1", "--out", str(sel), "--encoder-backbone", "toy",
                 "--encoder-epochs", "1", "--encoder-batch", "32", "--encoder-warmup", "0", "--clu-warmup", "0",
                 "--queue-size", "64", "--knn-k", "3", "--teacher-model", "toy", "--teacher-epochs", "1"]) == 0
    rec = json.loads((sel / "random_ipc1_seed0.json").read_text())
    assert rec["config"]["encoder"]["backbone"] == "toy" and rec["config"]["teacher"]["model"] == "toy"
    out = tmp_path / "students.json"
    assert main(["evaluate", *data, "--selection", str(sel / "random_ipc1_seed0.json"), "--seeds", "1",
                 "--epochs", "1", "--last-epochs", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["protocol"] == "kd student (toy)"
    syn = tmp_path / "syn"
    assert main(["distill", "--backbone", "toy-random", *data[:4], "--ipc", "1", "--steps", "2", "--out", str(syn),
                 "--quiet"]) == 0
    assert json.loads((syn / "distill.json").read_text())["backbone_key"].startswith("toy-random-seed0-1x8")
    out = tmp_path / "probe.json"
    assert main(["evaluate-synthetic", "--images", str(syn), "--backbone", "toy-random", "--mode", "ci", *data,
                 "--epochs", "2", "--views", "2", "--runs", "1", "--golden-epochs", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["protocol"] == "ci on toy-random"
