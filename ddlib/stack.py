"""A stack of S models of one architecture, each with its own weights, run as one module.

``ModelStack(models)`` holds every parameter and buffer stacked along a new first axis (S, ...)
(:func:`torch.func.stack_module_state`) and maps per-model batches ``x`` of shape (S, B, ...) to
logits (S, B, K): model s sees ``x[s]`` only. ``stack(x, shared=True)`` runs every model on the
same images (B, ...) -- one batched forward for the evaluation of S students on one test set.

Training S models in lockstep is then one forward, one ``backward`` of the *sum* of the S losses
(model s's parameters get exactly the gradient of its own loss: the other terms do not depend on
them) and one optimiser step over the stacked tensors. SGD, Adam and AdamW are elementwise, so one
optimiser over stacked parameters updates each slice as that model's own optimiser would; the
step count, lr and bias corrections are shared, which is right when every model steps at once.
(Checked bit for bit for PyTorch's CPU AdamW in ``tests/test_stack.py``.)

Two ways to compute the stacked forward (``backend``):

- ``"grouped"`` (the DD ConvNet only: conv, GroupNorm, ReLU, average pool, linear head): the S
  models' channels side by side, ``(B, S*C, H, W)``; every conv a grouped conv (``groups=S``),
  GroupNorm over S times the groups (each group stays inside one model), the head a batched
  matmul. With ``shared=True`` the first conv is one ordinary conv with S*width filters.
- ``"vmap"`` (any model whose ops have batching rules): :func:`torch.func.functional_call` under
  :func:`torch.func.vmap` over the stacked parameters. BatchNorm in train mode works (each model's
  running statistics are its slice of the stacked buffers, updated in place).

``"auto"`` takes ``grouped`` for a ConvNet and ``vmap`` otherwise.

A stack of one model (``grouped``) runs the model's own kernels on the model's own shapes (the
average pool by :func:`avg_pool_2x2`, equal bit for bit to ``F.avg_pool2d``; the head by
``F.linear``), so it computes what the model computes, bit for bit on the CPU. A stack of several is
not bit-identical to the separate models: the batched kernels sum in another order (a grouped conv
is another algorithm than S small convs; vmap's conv is a grouped conv, its GroupNorm a reshape),
so logits differ by float32 rounding. Training amplifies it in one place worth knowing: a conv bias
followed by GroupNorm has a true gradient of 0, its computed gradient is rounding noise, and Adam
divides that by its own root mean square, so such biases take lr-sized random steps in *either*
path, different ones in each; they do not change the function (the norm removes them). Compare
logits and accuracies, or the weights other than those biases (tests/test_stack.py and
tests/test_grid.py state the tolerances); over many steps the differences grow as any float
nondeterminism does (benchmarks/bench_student_grid.py records the accuracy differences).

Speed: a stack pays where the per-model work is too small for the device (a GPU running one small
student). On a CPU the DD ConvNet's step at batch 16 is bound by memory traffic (GroupNorm, ReLU,
pooling over activations near the size of the L2 cache), which stacking does not reduce, and a
stack's activations leave the cache: benchmarks/bench_student_grid.py measures both.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ddlib.nets.cifar import ConvNet
from ddlib.utils import ParamError, check_choice, check_int

__all__ = ["STACK_BACKENDS", "ModelStack", "grouped_supported", "avg_pool_2x2"]

#: ``auto`` = ``grouped`` where :func:`grouped_supported`, else ``vmap``.
STACK_BACKENDS = ("auto", "grouped", "vmap")
_GROUPED_LAYERS = (nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d)


class _Pool2x2(torch.autograd.Function):
    """``F.avg_pool2d(x, 2)`` bit for bit (the same sum order, x00 + x01 + x10 + x11, then /4), from
    strided slices: PyTorch's NCHW CPU kernel for it is several times slower than GroupNorm on the
    same tensor. Backward: each input pixel gets a quarter of its window's gradient (0 for a cropped
    odd last row/column), as ``avg_pool2d_backward``."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ctx.hw = (h, w)
        x = x[..., :h // 2 * 2, :w // 2 * 2]
        return (x[..., 0::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) * 0.25

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        n, c, h, w = g.shape
        gi = (g * 0.25)[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
        big_h, big_w = ctx.hw
        return F.pad(gi, (0, big_w - 2 * w, 0, big_h - 2 * h)) if (big_h, big_w) != (2 * h, 2 * w) else gi


def _is_pool2x2(m: nn.Module) -> bool:
    as_pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    return (isinstance(m, nn.AvgPool2d) and as_pair(m.kernel_size) == (2, 2) and as_pair(m.stride) == (2, 2)
            and as_pair(m.padding) == (0, 0) and not m.ceil_mode and m.divisor_override is None)


def avg_pool_2x2(x: Tensor) -> Tensor:
    """``F.avg_pool2d(x, 2)`` on (N, C, H, W), bit for bit, faster on CPU (see :class:`_Pool2x2`)."""
    return _Pool2x2.apply(x)


def grouped_supported(model: nn.Module) -> bool:
    """True for a :class:`~ddlib.nets.cifar.ConvNet` made of conv (ungrouped), GroupNorm, ReLU, avg-pool."""
    return (isinstance(model, ConvNet) and isinstance(model.head, nn.Linear)
            and all(isinstance(m, _GROUPED_LAYERS) for m in model.body)
            and all(m.groups == 1 for m in model.body if isinstance(m, nn.Conv2d)))


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    first = models[0]
    shapes = {k: (v.shape, v.dtype) for k, v in [*first.named_parameters(), *first.named_buffers()]}
    for i, m in enumerate(models[1:], 1):
        other = {k: (v.shape, v.dtype) for k, v in [*m.named_parameters(), *m.named_buffers()]}
        if type(m) is not type(first) or other != shapes:
            raise ParamError(f"models[{i}] ({type(m).__name__}) does not have the architecture of models[0] "
                             f"({type(first).__name__}): a stack needs identical parameter names and shapes")


class ModelStack(nn.Module):
    """S models of one architecture as one module; see the module docstring.

    ``forward(x)``: x (S, B, ...) -> (S, B, K). ``forward(x, shared=True)``: x (B, ...) -> (S, B, K).
    The stacked tensors are this module's parameters and buffers (one optimiser over
    ``stack.parameters()`` trains all S); :meth:`model` and :meth:`state_dicts` give each model back.
    """

    def __init__(self, models: Sequence[nn.Module], backend: str = "auto") -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ParamError("models must name at least one model to stack")
        check_choice("backend", backend, STACK_BACKENDS)
        _check_same_architecture(models)
        ok = grouped_supported(models[0])
        if backend == "grouped" and not ok:
            raise ParamError(f"backend='grouped' supports the ConvNet (conv, GroupNorm, ReLU, avg-pool) only, "
                             f"not {type(models[0]).__name__}; use backend='vmap' or 'auto'")
        self.backend = ("grouped" if ok else "vmap") if backend == "auto" else backend
        self.size = len(models)
        params, buffers = stack_module_state(models)
        self._pnames, self._bnames = list(params), list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(p.detach().clone()) for p in params.values()])
        for i, b in enumerate(buffers.values()):
            self.register_buffer(f"buffer{i}", b.detach().clone())
        # the architecture without storage: functional_call swaps every tensor in; not a submodule,
        # so it is neither a parameter of the stack nor moved with it
        object.__setattr__(self, "template", copy.deepcopy(models[0]).to("meta"))
        self.template.train(models[0].training)
        self.training = models[0].training

    # ------------------------------------------------------------------ tensors by model name
    def params(self) -> dict[str, Tensor]:
        """Stacked parameters by the model's parameter names: name -> (S, *shape)."""
        return dict(zip(self._pnames, self.stacked))

    def buffers_by_name(self) -> dict[str, Tensor]:
        """Stacked buffers by the model's buffer names: name -> (S, *shape)."""
        return {n: getattr(self, f"buffer{i}") for i, n in enumerate(self._bnames)}

    def train(self, mode: bool = True) -> ModelStack:
        super().train(mode)
        self.template.train(mode)
        return self

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each model's state_dict (detached copies on the stack's device)."""
        tensors = {**self.params(), **self.buffers_by_name()}
        return [{k: v[i].detach().clone() for k, v in tensors.items()} for i in range(self.size)]

    def model(self, i: int) -> nn.Module:
        """Model ``i`` as a standalone module (a copy of its weights, on the stack's device and mode)."""
        check_int("i", i, 0, self.size - 1)
        dev = self.stacked[0].device
        m = copy.deepcopy(self.template).to_empty(device=dev)
        m.load_state_dict(self.state_dicts()[i])
        return m.train(self.training)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, shared: bool = False) -> Tensor:
        if (shared and x.dim() < 2) or (not shared and (x.dim() < 3 or x.shape[0] != self.size)):
            want = "(B, ...)" if shared else f"({self.size}, B, ...)"
            raise ParamError(f"x of shape {tuple(x.shape)} does not fit a stack of {self.size} models: give {want}")
        if self.backend == "grouped":
            return self._grouped(x, shared)
        return vmap(self._call, in_dims=(0, 0, None if shared else 0))(self.params(), self.buffers_by_name(), x)

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def _grouped(self, x: Tensor, shared: bool) -> Tensor:
        """The ConvNet with the S models side by side in the channel axis (see the module docstring)."""
        p, b, s = self.params(), self.buffers_by_name(), self.size
        mean, std = b["normalize.mean"], b["normalize.std"]  # (S, 1, C, 1, 1)
        if shared and not (torch.equal(mean, mean[:1].expand_as(mean)) and torch.equal(std, std[:1].expand_as(std))):
            x, shared = x.unsqueeze(0).expand(s, *x.shape), False  # models normalise differently
        if not x.is_floating_point():
            x = x.float() / 255.0
        if shared:
            h = (x - mean[0].to(x.dtype)) / std[0].to(x.dtype)  # (B, C, H, W), as Normalize
        else:
            h = (x - mean.to(x.dtype)) / std.to(x.dtype)  # (S, B, C, H, W)
            h = h.transpose(0, 1).reshape(h.shape[1], -1, *h.shape[3:])  # (B, S*C, H, W)
        for i, m in enumerate(self.template.body):
            if isinstance(m, nn.Conv2d):
                w, bias = p[f"body.{i}.weight"], p.get(f"body.{i}.bias")
                h = F.conv2d(h, w.flatten(0, 1), None if bias is None else bias.flatten(), m.stride, m.padding,
                             m.dilation, 1 if shared else s)
                shared = False  # from here on each model has its own channels
            elif isinstance(m, nn.GroupNorm):
                w, bias = p.get(f"body.{i}.weight"), p.get(f"body.{i}.bias")
                h = F.group_norm(h, s * m.num_groups, None if w is None else w.flatten(),
                                 None if bias is None else bias.flatten(), m.eps)
            elif _is_pool2x2(m):
                h = avg_pool_2x2(h)
            else:  # ReLU, other average pools: per channel
                h = m(h)
        if shared:  # a body without convs: every model sees the same features
            h = h.unsqueeze(1).expand(h.shape[0], s, *h.shape[1:])
        feats = h.reshape(h.shape[0], s, -1).transpose(0, 1)  # (S, B, F), each model's flatten(1)
        if s == 1:  # the model's own nn.Linear call: a stack of one computes exactly what the model does
            return F.linear(feats[0], p["head.weight"][0], p["head.bias"][0]).unsqueeze(0)
        return torch.baddbmm(p["head.bias"].unsqueeze(1), feats, p["head.weight"].transpose(1, 2))

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def correct(self, x: Tensor, y: Tensor, batch_size: int = 512) -> Tensor:
        """Per model, how many of (x, y) it classifies right: (S,) int64, eval mode, no grad.

        ``x`` (N, C, H, W) uint8 or float in [0, 1], on any device (moved batch by batch)."""
        check_int("batch_size", batch_size, 1)
        if len(x) == 0 or len(x) != len(y):
            raise ParamError(f"x and y must be non-empty with one label per image; got {len(x)} and {len(y)}")
        dev = self.stacked[0].device
        was = self.training
        self.train(False)
        hits = torch.zeros(self.size, dtype=torch.int64, device=dev)
        try:
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(dev)
                xb = xb if xb.is_floating_point() else xb.float() / 255.0
                hits += (self(xb, shared=True).argmax(-1) == y[i:i + batch_size].to(dev)).sum(1)
        finally:
            self.train(was)
        return hits.cpu()

    def accuracy(self, x: Tensor, y: Tensor, batch_size: int = 512) -> Tensor:
        """Per model top-1 accuracy on (x, y): (S,) fractions in float32, the same number as
        :func:`ddlib.train.evaluate` (a float32 mean of hits) for the same predictions."""
        return self.correct(x, y, batch_size).float() / len(y)
