"""ModelStack: S models as one module give each model's own logits, gradients and optimiser steps.

Tolerances (float32): logits and gradients within 1e-5 of the one-by-one ones (the stacked kernels
sum in another order); AdamW over stacked parameters is bit for bit the per-model AdamW (it is
elementwise). A conv bias followed by GroupNorm has a true gradient of 0; its computed gradient is
rounding noise in both paths and is only checked to be tiny.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddlib import models
from ddlib.stack import ModelStack, avg_pool_2x2, grouped_supported
from ddlib.train import evaluate
from ddlib.utils import ParamError

S, B = 3, 5


def convnets(n: int = S, width: int = 6, depth: int = 2, size: int = 16, channels: int = 1) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [models.create("convnet", 4, channels, size, mean=[0.3] * channels, std=[0.2] * channels, width=width,
                          depth=depth) for _ in range(n)]


def _pre_norm_bias(name: str, model: torch.nn.Module) -> bool:
    """A conv bias right before a GroupNorm (its gradient is 0 in exact arithmetic)."""
    parts = name.split(".")
    return parts[0] == "body" and parts[-1] == "bias" and isinstance(model.body[int(parts[1])], torch.nn.Conv2d)


@pytest.mark.parametrize("backend", ["grouped", "vmap"])
def test_forward_and_gradients_match_each_model(backend):
    ms = convnets()
    st = ModelStack(ms, backend)
    assert st.backend == backend and st.size == S
    g = torch.Generator().manual_seed(1)
    x = torch.rand(S, B, 1, 16, 16, generator=g)
    y = torch.randint(0, 4, (S, B), generator=g)
    out = st(x)
    ref = torch.stack([m(x[i]) for i, m in enumerate(ms)])
    assert out.shape == (S, B, 4)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # the summed loss gives each slice its own model's gradient
    F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(S, B).mean(1).sum().backward()
    for i, m in enumerate(ms):
        F.cross_entropy(m(x[i]), y[i]).backward()
    for name, p in st.params().items():
        for i, m in enumerate(ms):
            want = dict(m.named_parameters())[name].grad
            if _pre_norm_bias(name, m):
                assert p.grad[i].abs().max() < 1e-5 and want.abs().max() < 1e-5
            else:
                torch.testing.assert_close(p.grad[i], want, rtol=1e-4, atol=1e-5)
    # every model on the same images (the evaluation)
    xs = torch.rand(7, 1, 16, 16, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(st(xs, shared=True), torch.stack([m(xs) for m in ms]), rtol=1e-5, atol=1e-5)


def test_grouped_shared_input_with_different_normalisation():
    ms = convnets(2)
    ms[1].normalize.mean.fill_(0.7)  # not the same statistics: the stack expands the input instead
    xs = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ModelStack(ms, "grouped")(xs, shared=True), torch.stack([m(xs) for m in ms]),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 7, 9), (1, 5, 3, 2)])
def test_avg_pool_2x2_is_avg_pool2d_bit_for_bit(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    out, want = avg_pool_2x2(x), F.avg_pool2d(x2, 2)
    assert torch.equal(out, want)
    up = torch.randn(want.shape, generator=g)
    out.backward(up)
    want.backward(up)
    assert torch.equal(x.grad, x2.grad)


@pytest.mark.parametrize("impl", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_one_adamw_over_stacked_parameters_is_each_models_adamw(impl):
    """Bit for bit, with weight decay and an lr changed between steps (per epoch, as the students), for
    the for-loop (CPU default, what ``make_optimizer`` gets) and foreach kernels. The fused CPU kernel
    is not: its vector loop and scalar tail round differently and a slice's alignment changes which
    elements fall in the tail (seen: 2 of 3,000 elements 1 ulp apart after 300 steps), so 1e-6."""
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(S, 7, 3, generator=g), torch.randn(S, 11, generator=g)]
    stacked = [torch.nn.Parameter(t.clone()) for t in init]
    own = [[torch.nn.Parameter(t[i].clone()) for t in init] for i in range(S)]
    opt = torch.optim.AdamW(stacked, lr=1e-3, weight_decay=0.01, **impl)
    opts = [torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **impl) for ps in own]
    for step in range(30):
        grads = [torch.randn(t.shape, generator=g) * 10.0 ** (step % 5 - 4) for t in init]
        for o in [opt, *opts]:
            for group in o.param_groups:
                group["lr"] = 1e-3 * (1 - step / 40)
        for p, gr in zip(stacked, grads):
            p.grad = gr.clone()
        for i in range(S):
            for p, gr in zip(own[i], grads):
                p.grad = gr[i].clone()
        opt.step()
        for o in opts:
            o.step()
    for i in range(S):
        for p, q in zip(stacked, own[i]):
            if impl.get("fused"):
                torch.testing.assert_close(p[i], q, rtol=0, atol=1e-6)
            else:
                assert torch.equal(p[i], q)


@pytest.mark.parametrize("backend", ["grouped", "vmap"])
def test_model_and_state_dicts_give_each_model_back(backend):
    ms = convnets()
    st = ModelStack(ms, backend)
    for i, m in enumerate(ms):
        back = st.model(i)
        assert type(back) is type(m)
        for k, v in m.state_dict().items():
            assert torch.equal(back.state_dict()[k], v) and torch.equal(st.state_dicts()[i][k], v)


@pytest.mark.parametrize("backend", ["grouped", "vmap"])
def test_accuracy_is_evaluate_per_model(backend):
    ms = convnets(width=4)
    x = (torch.rand(40, 1, 16, 16) * 255).to(torch.uint8)
    y = torch.arange(40) % 4
    st = ModelStack(ms, backend).train()
    acc = st.accuracy(x, y, batch_size=16)
    assert st.training  # the mode is restored
    assert acc.tolist() == [evaluate(m, x, y) for m in ms]  # the same float32 fractions
    assert st.correct(x, y).tolist() == [round(a * 40) for a in acc.tolist()]


def test_resnet18_batchnorm_in_train_mode_under_vmap():
    """BatchNorm: batch statistics per model in train mode, each model's running stats in its slice."""
    torch.manual_seed(0)
    ms = [models.create("resnet18", 3, 3, 8) for _ in range(2)]
    assert not grouped_supported(ms[0])
    st = ModelStack(ms)  # auto -> vmap
    assert st.backend == "vmap"
    x = torch.rand(2, 4, 3, 8, 8)
    out = st.train()(x)
    ref = torch.stack([m.train()(x[i]) for i, m in enumerate(ms)])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for name, buf in st.buffers_by_name().items():
        for i, m in enumerate(ms):
            want = dict(m.named_buffers())[name]
            if "running" in name:
                torch.testing.assert_close(buf[i], want, rtol=1e-5, atol=1e-6)
            elif "num_batches_tracked" in name:
                assert int(buf[i]) == int(want) == 1
    with torch.no_grad():  # eval mode uses the running statistics
        xs = torch.rand(3, 3, 8, 8)
        torch.testing.assert_close(st.eval()(xs, shared=True), torch.stack([m.eval()(xs) for m in ms]),
                                   rtol=1e-4, atol=1e-4)


def test_bad_input():
    ms = convnets(2)
    with pytest.raises(ParamError, match="at least one"):
        ModelStack([])
    with pytest.raises(ParamError, match="architecture"):
        ModelStack([ms[0], convnets(1, width=5)[0]])
    with pytest.raises(ParamError, match="backend"):
        ModelStack(ms, "loop")
    torch.manual_seed(0)
    with pytest.raises(ParamError, match="grouped"):
        ModelStack([models.create("resnet18", 3, 3, 8)], "grouped")
    st = ModelStack(ms)
    with pytest.raises(ParamError, match="does not fit"):
        st(torch.rand(3, 2, 1, 16, 16))
    with pytest.raises(ParamError, match="non-empty"):
        st.correct(torch.rand(0, 1, 16, 16), torch.zeros(0, dtype=torch.long))
