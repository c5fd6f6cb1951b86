"""The training loop: it learns, it is seeded, its hooks and schedules do what they say."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ddlib import models, train
from ddlib.kernels.augment import AUGMENTS
from ddlib.utils import ParamError


def toy(n: int = 160, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 8x8 gray uint8 images: class 1 is bright in its top half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.4
    x[y == 1, :, :4] += 0.5
    return (x * 255).round().to(torch.uint8), y


def small() -> torch.nn.Module:
    return models.create("convnet", 2, 1, 8, width=8, depth=2)


def test_fit_learns_a_separable_problem_and_evaluate_predict_embed() -> None:
    x, y = toy()
    xt, yt = toy(64, seed=1)
    m = small()
    cfg = train.TrainConfig(epochs=4, batch_size=32, lr=0.05, augment="none")
    hist = train.fit(m, x, y, cfg, eval_data=(xt, yt), progress=False)
    assert len(hist["loss"]) == 4 and hist["eval_epoch"] == [1, 2, 3, 4]
    assert hist["loss"][-1] < hist["loss"][0]
    acc = train.evaluate(m, xt, yt)
    assert acc == hist["eval_acc"][-1] and acc > 0.9
    assert train.predict(m, xt, batch_size=10).shape == (64, 2)
    assert train.embed(m.features, xt, batch_size=10).shape == (64, m.feature_dim)
    assert not m.training


def test_fit_is_seeded() -> None:
    x, y = toy(64)
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, augment="crop_flip")
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(99)  # the same init each time; only fit's seed varies
        m = small()
        runs.append(train.fit(m, x, y, cfg, seed=seed, progress=False)["loss"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_batch_loss_hook_gets_augmented_float_batches() -> None:
    x, y = toy(48)
    seen: list[tuple] = []

    def mse_to_one_hot(model, xb, yb):
        seen.append((xb.dtype, float(xb.min()), float(xb.max()), len(xb)))
        return F.mse_loss(model(xb).softmax(1), F.one_hot(yb, 2).float())

    m = small()
    cfg = train.TrainConfig(epochs=2, batch_size=20, optimizer="adam", lr=1e-2, weight_decay=0.0,
                            augment=dataclasses.replace(AUGMENTS["kd"], crop_scale=(0.5, 1.0)))
    hist = train.fit(m, x, y, cfg, batch_loss=mse_to_one_hot, progress=False)
    assert len(seen) == 2 * 3  # ceil(48 / 20) batches a epoch, the last one partial
    assert [s[3] for s in seen[:3]] == [20, 20, 8]
    assert all(s[0] == torch.float32 and s[1] >= 0 and s[2] <= 1 for s in seen)
    assert hist["loss"][0] < 0.5


def test_lr_schedules() -> None:
    cfg = train.TrainConfig(epochs=10, warmup_epochs=2, lr=1.0)
    assert train.lr_factor(cfg, 1.0) == pytest.approx(0.5)
    assert train.lr_factor(cfg, 2.0) == pytest.approx(1.0)
    assert train.lr_factor(cfg, 6.0) == pytest.approx(0.5)
    assert train.lr_factor(cfg, 10.0) == pytest.approx(0.0, abs=1e-9)
    floor = dataclasses.replace(cfg, final_lr_fraction=0.01)
    assert train.lr_factor(floor, 10.0) == pytest.approx(0.01)
    half = train.TrainConfig(epochs=10, schedule="half_cosine")
    assert train.lr_factor(half, 10.0) == pytest.approx(0.5)
    assert train.lr_factor(train.TrainConfig(epochs=3, schedule="constant"), 2.5) == 1.0


@pytest.mark.parametrize("opt,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_optimizers(opt: str, cls: type) -> None:
    m = small()
    o = train.make_optimizer(m.parameters(), train.TrainConfig(epochs=1, optimizer=opt))
    assert isinstance(o, cls)


def test_frozen_body_trains_only_the_head() -> None:
    x, y = toy(32)
    m = small()
    for p in m.body.parameters():
        p.requires_grad_(False)
    before = [p.clone() for p in m.body.parameters()]
    head_before = m.head.weight.clone()
    train.fit(m, x, y, train.TrainConfig(epochs=1, batch_size=16, augment=None), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, m.body.parameters()))
    assert not torch.equal(head_before, m.head.weight)


@pytest.mark.parametrize("kw,param", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2, "optimizer": "lbfgs"}, "optimizer"),
    ({"epochs": 2, "schedule": "step"}, "schedule"),
    ({"epochs": 2, "lr": -1.0}, "lr"),
    ({"epochs": 2, "warmup_epochs": 3}, "warmup_epochs"),
    ({"epochs": 2, "augment": "autoaugment"}, "augment"),
    ({"epochs": 2, "batch_size": 0}, "batch_size"),
    ({"epochs": 2, "momentum": 1.5}, "momentum"),
])
def test_bad_config_raises_param_error(kw: dict, param: str) -> None:
    with pytest.raises(ParamError, match=param):
        train.TrainConfig(**kw)


def test_bad_inputs_raise_param_error() -> None:
    x, y = toy(8)
    with pytest.raises(ParamError):
        train.fit(small(), x, y[:4], train.TrainConfig(epochs=1), progress=False)
    with pytest.raises(ParamError, match="TrainConfig"):
        train.fit(small(), x, y, {"epochs": 1}, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="y must"):
        train.evaluate(small(), x, y[:3])


# ----------------------------------------------------------------------------- the loop and its parts
class _Recorder(train.Hook):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def epoch_start(self, state: train.LoopState) -> None:
        self.events.append(("epoch_start", state.epoch, state.model.training))

    def step_start(self, state: train.LoopState) -> None:
        self.events.append(("step_start", state.epoch, state.step))

    def step_end(self, state: train.LoopState, batch: train.Batch, loss: torch.Tensor, out: object) -> None:
        self.events.append(("step_end", state.epoch, state.step, len(batch), out))

    def epoch_end(self, state: train.LoopState) -> None:
        self.events.append(("epoch_end", state.epoch, len(state.history["loss"])))


def test_loop_calls_hooks_in_order_and_records_the_weighted_mean_loss() -> None:
    x, y = torch.arange(5.0).view(5, 1), torch.zeros(5)
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss stays mean(y_hat - y)^2 = 0
    rec = _Recorder()

    def step(m: torch.nn.Module, b: train.Batch) -> tuple[torch.Tensor, object]:
        return ((m(b.x).squeeze(1) - b.y) ** 2).mean() + len(b), f"out{len(b)}"

    hist = train.loop(model, opt, train.tensor_batches(x, y, 3), step, 2, torch.Generator().manual_seed(0),
                      hooks=[rec])
    assert rec.events[:5] == [("epoch_start", 0, True), ("step_start", 0, 0), ("step_end", 0, 0, 3, "out3"),
                              ("step_start", 0, 1), ("step_end", 0, 1, 2, "out2")]
    assert rec.events[5] == ("epoch_end", 0, 1) and len(rec.events) == 12
    assert hist["loss"] == [pytest.approx((3 * 3 + 2 * 2) / 5)] * 2 and hist["seconds"] >= 0


def test_batches_shuffle_from_the_generator_and_drop_last() -> None:
    seen: list[torch.Tensor] = []
    src = train.Batches(10, 4, lambda idx, gen: seen.append(idx) or train.Batch(idx, None))
    assert src.steps_per_epoch == 3 and train.Batches(10, 4, src.fetch, drop_last=True).steps_per_epoch == 2
    assert [len(b) for b in src(0, torch.Generator().manual_seed(5))] == [4, 4, 2]
    assert torch.equal(torch.cat(seen), torch.randperm(10, generator=torch.Generator().manual_seed(5)))


def test_lr_hooks() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    state = train.LoopState(torch.nn.Linear(1, 1), opt, None, epochs=4, steps_per_epoch=2, epoch=1, step=1)
    train.LrPerStep(lambda e, s, n: e + s / n).step_start(state)
    assert opt.param_groups[0]["lr"] == 1.5
    train.LrPerEpoch(lambda e: 10.0 * e).epoch_start(state)
    assert opt.param_groups[0]["lr"] == 10.0
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    opt.step()  # (no gradient: nothing moves; the scheduler wants a step before its own)
    train.LrScheduler(sched).epoch_end(state)
    assert opt.param_groups[0]["lr"] == 5.0


def test_evaluate_hook_at_chosen_epochs() -> None:
    x, y = toy(16)
    m = small()
    ev = train.Evaluate(lambda model: 0.5, lambda e: e >= 2)
    hist = train.loop(m, torch.optim.SGD(m.parameters(), lr=0.0), train.image_batches(x, y, 8, torch.device("cpu")),
                      train.ce_step(), 4, torch.Generator().manual_seed(0), hooks=[ev])
    assert hist["eval_acc"] == [0.5, 0.5] and hist["eval_epoch"] == [3, 4]


def test_image_batches_views_and_cutmix() -> None:
    x, y = toy(8)
    gen = torch.Generator().manual_seed(0)
    (b,) = list(train.image_batches(x, y, 8, torch.device("cpu"), augment="crop_flip", views=2)(0, gen))
    assert isinstance(b.x, tuple) and len(b.x) == 2 and not torch.equal(b.x[0], b.x[1])
    assert b.x[0].dtype == torch.float32 and torch.equal(b.y, y[b.index])
    (b,) = list(train.image_batches(x, y, 8, torch.device("cpu"), cutmix_alpha=0.0)(0, gen))
    assert torch.equal(b.mix[0], torch.arange(8)) and b.mix[1] == 1.0 and torch.equal(b.x, x[b.index] / 255.0)
    (b,) = list(train.image_batches(x, y, 8, torch.device("cpu"), cutmix_alpha=1.0)(0, gen))
    assert 0.0 <= b.mix[1] <= 1.0 and sorted(b.mix[0].tolist()) == list(range(8))
    with pytest.raises(ParamError, match="views"):
        train.image_batches(x, y, 8, torch.device("cpu"), views=2)


def test_stacked_batches_give_each_member_its_own_draws() -> None:
    """Member j of a stacked source draws from its own generator exactly what its source draws alone."""
    x, y = toy(10)
    dev = torch.device("cpu")
    members = [train.image_batches(x[i:i + 7], y[i:i + 7], 3, dev, augment="kd", cutmix_alpha=1.0) for i in (0, 3)]
    stacked = train.StackedBatches(members)
    assert stacked.steps_per_epoch == 3
    got = list(stacked(0, [torch.Generator().manual_seed(s) for s in (4, 5)]))
    alone = [list(m(0, torch.Generator().manual_seed(s))) for m, s in zip(members, (4, 5))]
    assert [len(b) for b in got] == [3, 3, 1]  # the loop weighs a step by its batch length, not by S
    for t, b in enumerate(got):
        assert b.x.shape == (2, len(b), 1, 8, 8) and b.index.shape == (len(b), 2)
        for j in range(2):
            a = alone[j][t]
            assert torch.equal(b.x[j], a.x) and torch.equal(b.index[:, j], a.index) and torch.equal(b.y[j].y, a.y)
            assert torch.equal(b.y[j].mix[0], a.mix[0]) and b.y[j].mix[1] == a.mix[1]


def test_stacked_batches_bad_input() -> None:
    x, y = toy(10)
    src = [train.tensor_batches(x, y, 4), train.tensor_batches(x[:4], y[:4], 4)]
    with pytest.raises(ParamError, match="steps_per_epoch"):
        train.StackedBatches(src)
    with pytest.raises(ParamError, match="sources"):
        train.StackedBatches([])
    with pytest.raises(ParamError, match="gen"):
        list(train.StackedBatches(src[:1])(0, torch.Generator()))


def test_embed_options() -> None:
    x, _ = toy(10)
    m = small().train()
    f = train.embed(m.features, x, batch_size=3)
    assert m.training and f.shape == (10, m.feature_dim) and f.dtype == torch.float32
    n = train.embed(m.features, x, batch_size=4, normalize=True)
    assert torch.allclose(n, F.normalize(f, dim=1), atol=1e-6)
    assert torch.equal(train.embed(m.features, x, batch_size=3, autocast=True), f)  # autocast acts on CUDA only
    assert train.embed(m, x[:0]).shape == (0, m.feature_dim)


# ----------------------------------------------------------------------------- Accel (issue 12)
def _fit_with(accel: train.Accel | None) -> tuple[list[float], torch.nn.Module]:
    x, y = toy(64)
    torch.manual_seed(7)
    m = small()
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, augment="crop_flip")
    return train.fit(m, x, y, cfg, seed=3, progress=False, accel=accel)["loss"], m


def test_accel_parse_names_and_rejects_unknown_parts() -> None:
    assert train.Accel.parse("plain") == train.Accel() and train.Accel().plain
    assert train.Accel.parse("amp+channels_last") == train.Accel(amp=True, channels_last=True)
    assert train.Accel.parse("compile") == train.Accel(compile="inductor")
    assert str(train.Accel.parse("compile:eager+amp")) == "amp+compile:eager"
    with pytest.raises(ParamError, match="accel='fast'.*plain, amp, channels_last"):
        train.Accel.parse("fast")
    with pytest.raises(ParamError, match="accel='amp:x'"):
        train.Accel.parse("amp:x")
    with pytest.raises(ParamError, match="compile='tvm'.*inductor"):
        train.Accel(compile="tvm")


def test_accel_channels_last_and_compile_keep_the_plain_losses() -> None:
    """NHWC and a compiled wrapper change the memory order and the call path, not the training."""
    plain, _ = _fit_with(None)
    nhwc, m = _fit_with(train.Accel(channels_last=True))
    assert nhwc == pytest.approx(plain, rel=1e-5, abs=1e-6)
    conv = next(p for p in m.parameters() if p.dim() == 4 and p.shape[1] > 1)  # (C = 1 is both orders)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    eager, _ = _fit_with(train.Accel(compile="eager"))
    assert eager == pytest.approx(plain, rel=1e-5, abs=1e-6)


def test_accel_amp_runs_the_step_in_bf16_and_keeps_float32_weights() -> None:
    seen = []

    class Probe(train.Hook):
        def step_end(self, state, batch, loss, out):  # noqa: ANN001
            seen.append(out.dtype)

    x, y = toy(32)
    torch.manual_seed(7)
    m = small()
    opt = train.make_optimizer(m.parameters(), train.TrainConfig(epochs=1, lr=0.05))
    hist = train.loop(m, opt, train.tensor_batches(x.float() / 255, y, 16), train.ce_step(), 2,
                      hooks=[Probe()], accel=train.Accel(amp=True))
    assert seen and all(d == torch.bfloat16 for d in seen)  # the logits came out of autocast
    assert all(p.dtype == torch.float32 for p in m.parameters()) and all(v == v for v in hist["loss"])
    plain, _ = _fit_with(None)
    amp, _ = _fit_with(train.Accel(amp=True))
    assert amp != plain and amp == pytest.approx(plain, rel=0.1)  # bf16 rounding, the same training
