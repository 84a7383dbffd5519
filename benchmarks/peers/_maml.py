"""MAML in each PyTorch peer (and ANIL and ProtoNets in learn2learn), on the harness's configurations.

One torch module per model (the same for every peer), loaded from the
canonical weights, and four ways of differentiating through the inner loop:

* ``learn2learn``: ``l2l.algorithms.MAML(model, lr, first_order=False)``,
  ``clone()`` + ``adapt(loss)`` per task, a Python loop over tasks.
* ``higher``: ``higher.innerloop_ctx(model, SGD)`` per task,
  ``diffopt.step(loss)``.
* ``torchopt``: TorchOpt's functional API: ``torchopt.sgd(lr)``'s
  ``init``/``update`` with ``inplace=False`` and ``torchopt.apply_updates`` over
  ``torch.func.functional_call``, a Python loop over tasks; the outer step is
  ``torchopt.adam``'s functional ``update``.
* ``torch.func``: ``grad`` of the inner loss, the inner loop unrolled inside a
  ``vmap`` over tasks, ``grad`` of the mean query loss.

learn2learn also runs the conv suite's ANIL (``MAML`` around the linear head
only, features from the body) and ProtoNets (the body over a task's support and
query images together, prototypes, negative squared distances). Every one
averages the per-task query losses (so the meta-gradient is the mean
over tasks, as jmeta's) and, except TorchOpt, steps ``torch.optim.Adam``. They
run on ``BENCH_TORCH_DEVICE`` (``cpu`` by default; ``cuda`` with
``python -m benchmarks run ... --torch-device cuda``), where ``sync()`` waits
for the device.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from benchmarks._configs import Config
from benchmarks.peers._compat import import_peer, torch_device


def _modules():
  import torch
  from torch import nn
  import torch.nn.functional as F

  class MLP(nn.Module):
    def __init__(self):
      super().__init__()
      self.l0, self.l1, self.l2 = nn.Linear(1, 40), nn.Linear(40, 40), nn.Linear(40, 1)

    def forward(self, x):
      return self.l2(F.relu(self.l1(F.relu(self.l0(x)))))

  class ConvNet(nn.Module):
    def __init__(self, ways: int, feat: int):
      super().__init__()
      for i in range(4):
        setattr(self, f"conv{i}", nn.Conv2d(1 if i == 0 else 64, 64, 3, padding=1))
        setattr(self, f"norm{i}", nn.BatchNorm2d(64, affine=True, track_running_stats=False))
      self.head = nn.Linear(feat, ways)

    def features(self, x):
      for i in range(4):
        x = getattr(self, f"norm{i}")(getattr(self, f"conv{i}")(x))
        x = F.max_pool2d(F.relu(x), 2)
      return x.flatten(1)

    def forward(self, x):
      return self.head(self.features(x))

  return torch, MLP, ConvNet


def build_model(cfg: Config, weights: dict[str, np.ndarray], dtype: str, device: str = "cpu"):
  """The torch module of ``cfg`` holding ``weights`` (canonical names) on ``device``."""
  torch, MLP, ConvNet = _modules()
  if cfg.model == "mlp":
    model = MLP()
  else:
    model = ConvNet(cfg.ways, weights["head.weight"].shape[1])
  tdt = getattr(torch, dtype)
  model = model.to(device=device, dtype=tdt)
  names = [n for n, _ in model.named_parameters()]
  if sorted(names) != sorted(weights):
    raise ValueError(f"torch parameters {names} differ from the canonical {sorted(weights)}")
  with torch.no_grad():
    for n, p in model.named_parameters():
      p.copy_(torch.as_tensor(weights[n], dtype=tdt))
  return model


def loss_fn(cfg: Config) -> Callable:
  import torch.nn.functional as F
  return F.mse_loss if cfg.model == "mlp" else F.cross_entropy


class _Peer:
  """Shared plumbing: weights, batches as tensors, the step/sync protocol."""

  name = "peer"
  steps_per_call = 1
  algos = ("maml",)  # the Config.algo values this peer implements

  def __init__(self, cfg: Config, weights, batches, dtype: str = "float32"):
    if cfg.algo not in self.algos:
      raise NotImplementedError(f"{self.name} runs {self.algos} here, not {cfg.algo!r}")
    import torch
    self.torch = torch
    self.lib = import_peer(self.name)
    self.cfg = cfg
    self.device = torch.device(torch_device())
    self.model = build_model(cfg, weights, dtype, self.device)
    self.loss = loss_fn(cfg)
    tdt = getattr(torch, dtype)
    self.tasks = []
    for sx, sy, qx, qy in batches:
      conv = lambda a, lab: (torch.as_tensor(a, device=self.device) if lab and cfg.model == "conv"
                             else torch.as_tensor(a, dtype=tdt, device=self.device))
      self.tasks.append((conv(sx, False), conv(sy, True), conv(qx, False), conv(qy, True)))
    self._i = 0
    self.setup()

  def setup(self) -> None:
    self.outer = self.torch.optim.Adam(self.model.parameters(), lr=self.cfg.outer_lr)

  def grads(self, batch) -> None:
    """Fills ``p.grad`` of ``self.model`` with the mean meta-gradient on ``batch``."""
    raise NotImplementedError

  def meta_grad(self, batch_index: int = 0) -> dict[str, np.ndarray]:
    self.model.zero_grad(set_to_none=True)
    self.grads(self.tasks[batch_index])
    # A parameter the algorithm does not use (ProtoNets' head) has no gradient.
    return {n: p.grad.detach().double().cpu().numpy().copy()
            for n, p in self.model.named_parameters() if p.grad is not None}

  def step(self) -> None:
    self.outer.zero_grad(set_to_none=True)
    self.grads(self.tasks[self._i % len(self.tasks)])
    self.outer.step()
    self._i += 1

  def sync(self) -> None:
    if self.device.type == "cuda":  # torch on CPU is synchronous
      self.torch.cuda.synchronize(self.device)


class Learn2Learn(_Peer):
  name = "learn2learn"
  algos = ("maml", "anil", "protonet")

  def setup(self) -> None:
    cfg = self.cfg
    adapted = self.model.head if cfg.algo == "anil" else self.model
    self.maml = self.lib.algorithms.MAML(adapted, lr=cfg.inner_lr, first_order=cfg.first_order)
    params = [p for n, p in self.model.named_parameters()
              if cfg.algo != "protonet" or not n.startswith("head")]
    self.outer = self.torch.optim.Adam(params, lr=cfg.outer_lr)

  def grads(self, batch) -> None:
    sx, sy, qx, qy = batch
    n = sx.shape[0]
    if self.cfg.algo == "anil":
      for t in range(n):
        fs, fq = self.model.features(sx[t]), self.model.features(qx[t])
        learner = self.maml.clone()
        for _ in range(self.cfg.inner_steps):
          learner.adapt(self.loss(learner(fs), sy[t]))
        (self.loss(learner(fq), qy[t]) / n).backward()
      return
    if self.cfg.algo == "protonet":  # as learn2learn's ProtoNet example
      torch = self.torch
      for t in range(n):
        z = self.model.features(torch.cat([sx[t], qx[t]]))
        zs, zq = z[:sx.shape[1]], z[sx.shape[1]:]
        onehot = torch.nn.functional.one_hot(sy[t], self.cfg.ways).to(z.dtype)
        protos = onehot.T @ zs / onehot.sum(0)[:, None]
        d = ((zq[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
        (self.loss(-d, qy[t]) / n).backward()
      return
    for t in range(n):
      learner = self.maml.clone()
      for _ in range(self.cfg.inner_steps):
        learner.adapt(self.loss(learner(sx[t]), sy[t]))
      (self.loss(learner(qx[t]), qy[t]) / n).backward()


class Higher(_Peer):
  name = "higher"

  def setup(self) -> None:
    super().setup()
    self.inner = self.torch.optim.SGD(self.model.parameters(), lr=self.cfg.inner_lr)

  def grads(self, batch) -> None:
    sx, sy, qx, qy = batch
    n = sx.shape[0]
    for t in range(n):
      with self.lib.innerloop_ctx(self.model, self.inner, copy_initial_weights=False,
                                  track_higher_grads=not self.cfg.first_order) as (fmodel, diffopt):
        for _ in range(self.cfg.inner_steps):
          diffopt.step(self.loss(fmodel(sx[t]), sy[t]))
        (self.loss(fmodel(qx[t]), qy[t]) / n).backward()


class TorchOpt(_Peer):
  name = "torchopt"

  def setup(self) -> None:
    torchopt = self.lib
    self.names = [n for n, _ in self.model.named_parameters()]
    self.inner = torchopt.sgd(lr=self.cfg.inner_lr)
    self.outer_fn = torchopt.adam(lr=self.cfg.outer_lr)
    self.outer_state = self.outer_fn.init(tuple(self.model.parameters()))

  def _query_loss(self, params, sx, sy, qx, qy):
    torch, torchopt = self.torch, self.lib
    call = lambda p, x: torch.func.functional_call(self.model, dict(zip(self.names, p)), (x,))
    state = self.inner.init(params)
    for _ in range(self.cfg.inner_steps):
      g = torch.autograd.grad(self.loss(call(params, sx), sy), params,
                              create_graph=not self.cfg.first_order)
      updates, state = self.inner.update(g, state, inplace=False)
      params = torchopt.apply_updates(params, updates, inplace=False)
    return self.loss(call(params, qx), qy)

  def grads(self, batch) -> None:
    sx, sy, qx, qy = batch
    n = sx.shape[0]
    params = tuple(self.model.parameters())
    for t in range(n):
      (self._query_loss(params, sx[t], sy[t], qx[t], qy[t]) / n).backward()

  def step(self) -> None:
    params = tuple(self.model.parameters())
    for p in params:
      p.grad = None
    self.grads(self.tasks[self._i % len(self.tasks)])
    with self.torch.no_grad():
      updates, self.outer_state = self.outer_fn.update(
          tuple(p.grad for p in params), self.outer_state, inplace=False)
      self.lib.apply_updates(params, updates, inplace=True)
    self._i += 1


class TorchFunc(_Peer):
  name = "torch.func"

  def setup(self) -> None:
    super().setup()
    torch = self.torch
    fn = torch.func
    model, loss, cfg = self.model, self.loss, self.cfg
    if cfg.model == "conv":
      # nn.BatchNorm2d under torch.func.vmap does not normalise each task with
      # its own statistics (its meta-gradient differed from every other
      # implementation's by O(1)); the functional forward below does, as a
      # torch.func user would write it.
      F = torch.nn.functional

      def call(p, x):
        for i in range(4):
          x = F.conv2d(x, p[f"conv{i}.weight"], p[f"conv{i}.bias"], padding=1)
          mean = x.mean(dim=(0, 2, 3), keepdim=True)
          var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
          x = (x - mean) * torch.rsqrt(var + 1e-5)
          x = x * p[f"norm{i}.weight"].view(1, -1, 1, 1) + p[f"norm{i}.bias"].view(1, -1, 1, 1)
          x = F.max_pool2d(F.relu(x), 2)
        return F.linear(x.flatten(1), p["head.weight"], p["head.bias"])
    else:
      call = lambda p, x: fn.functional_call(model, p, (x,))

    def inner_loss(p, x, y):
      return loss(call(p, x), y)

    def task_loss(p, sx, sy, qx, qy):
      for _ in range(cfg.inner_steps):
        g = fn.grad(inner_loss)(p, sx, sy)
        if cfg.first_order:
          g = {k: v.detach() for k, v in g.items()}
        p = {k: p[k] - cfg.inner_lr * g[k] for k in p}
      return inner_loss(p, qx, qy)

    batched = fn.vmap(task_loss, in_dims=(None, 0, 0, 0, 0))
    self._meta_grad = fn.grad(lambda p, *b: batched(p, *b).mean())

  def grads(self, batch) -> None:
    params = {n: p.detach() for n, p in self.model.named_parameters()}
    g = self._meta_grad(params, *batch)
    for n, p in self.model.named_parameters():
      p.grad = g[n]


IMPLS = {cls.name: cls for cls in (Learn2Learn, Higher, TorchOpt, TorchFunc)}


def make_peer(name: str, cfg: Config, weights, batches, dtype: str = "float32") -> _Peer:
  """Builds peer ``name`` (raises ImportError when it is not installed)."""
  return IMPLS[name](cfg, weights, batches, dtype)
