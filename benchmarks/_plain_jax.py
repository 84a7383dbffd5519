"""Hand-written meta-steps in plain JAX: the baseline that shows jmeta's overhead.

MAML (second order), first-order MAML, ANIL and ProtoNets on the harness's
configurations, written the way a JAX user would write them without a
meta-learning library: a dict of arrays, the model as a function, the inner
loop as a ``lax.scan`` of ``jax.grad`` steps, ``optax.adam`` as the outer
optimizer and one ``jax.jit`` (with buffer donation) around the meta-step.
Nothing here imports jmeta. Two ways of mapping the task batch:

* ``vmap`` (row ``jax``): ``jax.grad`` of the mean of the ``jax.vmap``-ed
  per-task query losses.
* ``scan`` (row ``jax-scan``): a ``lax.scan`` over the tasks that sums each
  task's ``jax.value_and_grad`` (the memory of one task), which is what jmeta's
  ``task_map="auto"`` does on the CPU for image tasks.

The conv net uses ``lax.conv_general_dilated``, batch statistics with an affine
transform, ReLU and a 2x2 max-pool over a reshaped window (PyTorch's order of
operations). Weights come in the canonical (PyTorch) layout of
``benchmarks._configs`` and are converted here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from benchmarks._configs import Config

TASK_MAPS = {"jax": "vmap", "jax-scan": "scan"}


def to_jax(cfg: Config, w: dict[str, np.ndarray], dtype) -> dict:
  """Canonical weights to this module's layout: ``(in, out)`` dense, HWIO conv kernels."""
  import jax.numpy as jnp
  out = {}
  for name, v in w.items():
    if name.endswith("weight") and v.ndim == 2:
      v = v.T
    elif name.endswith("weight") and v.ndim == 4:
      v = v.transpose(2, 3, 1, 0)
    out[name] = jnp.asarray(v, dtype=dtype)
  if cfg.algo == "protonet":  # no linear head: the embedding is the conv body
    out = {k: v for k, v in out.items() if not k.startswith("head")}
  return out


def from_jax(p: dict) -> dict[str, np.ndarray]:
  """This module's parameters (or gradients) back to the canonical layout, float64."""
  out = {}
  for name, v in p.items():
    v = np.asarray(v, dtype=np.float64)
    if name.endswith("weight") and v.ndim == 2:
      v = v.T
    elif name.endswith("weight") and v.ndim == 4:
      v = v.transpose(3, 2, 0, 1)
    out[name] = v
  return out


def to_arrays(cfg: Config, batch, dtype) -> tuple:
  """A numpy task batch on the device (conv images NCHW -> NHWC, int32 labels)."""
  import jax
  import jax.numpy as jnp
  sx, sy, qx, qy = batch
  if cfg.model == "conv":
    sx, qx = sx.transpose(0, 1, 3, 4, 2), qx.transpose(0, 1, 3, 4, 2)
    sy, qy = jnp.asarray(sy, jnp.int32), jnp.asarray(qy, jnp.int32)
  else:
    sy, qy = jnp.asarray(sy, dtype), jnp.asarray(qy, dtype)
  return jax.block_until_ready((jnp.asarray(sx, dtype), sy, jnp.asarray(qx, dtype), qy))


# --------------------------------------------------------------------------
# Models and losses.

def mlp(p: dict, x):
  """The 1-40-40-1 ReLU MLP, ``x`` of shape ``(n, 1)``."""
  import jax
  row = lambda b: b.reshape(1, -1)  # explicit broadcasting (no rank promotion)
  h = jax.nn.relu(x @ p["l0.weight"] + row(p["l0.bias"]))
  h = jax.nn.relu(h @ p["l1.weight"] + row(p["l1.bias"]))
  return h @ p["l2.weight"] + row(p["l2.bias"])


def conv_features(p: dict, x):
  """4 x [conv 3x3 'same', batch-statistics norm, ReLU, 2x2 max-pool], flattened as NCHW."""
  import jax
  from jax import lax
  channel = lambda v: v.reshape(1, 1, 1, -1)
  for i in range(4):
    x = lax.conv_general_dilated(x, p[f"conv{i}.weight"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = x + channel(p[f"conv{i}.bias"])
    mean = x.mean(axis=(0, 1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(0, 1, 2), keepdims=True)
    x = (x - mean) * lax.rsqrt(var + 1e-5) * channel(p[f"norm{i}.weight"]) \
        + channel(p[f"norm{i}.bias"])
    x = jax.nn.relu(x)
    n, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
  return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)


def linear_head(p: dict, f):
  return f @ p["head.weight"] + p["head.bias"].reshape(1, -1)


def cross_entropy(logits, labels):
  """Mean cross-entropy of integer labels (one-hot: no gather in the derivatives)."""
  import jax
  logp = jax.nn.log_softmax(logits)
  return -(logp * jax.nn.one_hot(labels, logits.shape[-1], dtype=logp.dtype)).sum(-1).mean()


def mse(pred, y):
  return ((pred - y) ** 2).mean()


# --------------------------------------------------------------------------
# One task's query loss after adaptation, per algorithm.

def _sgd_scan(loss: Callable, p: Any, steps: int, lr: float, first_order: bool):
  """``steps`` inner SGD steps on ``loss`` from ``p`` as a ``lax.scan``."""
  import jax
  from jax import lax

  def one(p, _):
    g = jax.grad(loss)(p)
    if first_order:
      g = lax.stop_gradient(g)
    return jax.tree.map(lambda w, d: w - lr * d, p, g), None

  return lax.scan(one, p, None, length=steps)[0]


def task_loss_fn(cfg: Config) -> Callable:
  """``task_loss(params, (sx, sy, qx, qy)) -> query loss`` of one task for ``cfg``."""
  import jax
  import jax.numpy as jnp
  steps, lr, fo = cfg.inner_steps, cfg.inner_lr, cfg.first_order
  if cfg.model == "mlp":
    def model_loss(p, x, y):
      return mse(mlp(p, x), y)
  else:
    def model_loss(p, x, y):
      return cross_entropy(linear_head(p, conv_features(p, x)), y)

  if cfg.algo == "maml":
    def task_loss(p, task):
      sx, sy, qx, qy = task
      adapted = _sgd_scan(lambda q: model_loss(q, sx, sy), p, steps, lr, fo)
      return model_loss(adapted, qx, qy)
    return task_loss

  if cfg.algo == "anil":
    def task_loss(p, task):
      sx, sy, qx, qy = task
      fs, fq = conv_features(p, sx), conv_features(p, qx)
      head = {k: v for k, v in p.items() if k.startswith("head")}
      head = _sgd_scan(lambda h: cross_entropy(linear_head(h, fs), sy), head, steps, lr, fo)
      return cross_entropy(linear_head(head, fq), qy)
    return task_loss

  def task_loss(p, task):  # ProtoNets: support and query embedded together
    sx, sy, qx, qy = task
    z = conv_features(p, jnp.concatenate([sx, qx]))
    zs, zq = z[:sx.shape[0]], z[sx.shape[0]:]
    onehot = jax.nn.one_hot(sy, cfg.ways, dtype=z.dtype)
    protos = (onehot.T @ zs) / onehot.sum(0)[:, None]
    d = ((zq[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
    return cross_entropy(-d, qy)
  return task_loss


def meta_loss_and_grad(cfg: Config, task_map: str) -> Callable:
  """``(params, tasks) -> (mean query loss, mean meta-gradient)`` over the task batch."""
  import jax
  import jax.numpy as jnp
  task_loss = task_loss_fn(cfg)
  if task_map == "vmap":
    def mean_loss(p, tasks):
      return jax.vmap(task_loss, in_axes=(None, 0))(p, tasks).mean()
    return jax.value_and_grad(mean_loss)
  if task_map != "scan":
    raise ValueError(f"task_map must be 'vmap' or 'scan'; got {task_map!r}")
  vg = jax.value_and_grad(task_loss)

  def scanned(p, tasks):
    def body(acc, task):
      l, g = vg(p, task)
      return (acc[0] + l, jax.tree.map(jnp.add, acc[1], g)), None
    zero = (jnp.zeros((), tasks[0].dtype), jax.tree.map(jnp.zeros_like, p))
    (l, g), _ = jax.lax.scan(body, zero, tasks)
    n = tasks[0].shape[0]
    return l / n, jax.tree.map(lambda v: v / n, g)
  return scanned


class PlainJaxImpl:
  """A hand-written meta-step on a config: ``step()`` runs one, ``sync()`` waits.

  Args:
    cfg: the configuration.
    weights: canonical initial weights.
    batches: numpy task batches (cycled).
    dtype: ``"float32"`` or ``"float64"`` (the latter needs ``jax_enable_x64``).
    task_map: ``"vmap"`` or ``"scan"`` over the tasks of a batch.
  """

  steps_per_call = 1

  def __init__(self, cfg: Config, weights, batches, dtype: str = "float32",
               task_map: str = "vmap"):
    import jax
    import jax.numpy as jnp
    import optax
    self.cfg = cfg
    dt = jnp.dtype(dtype)
    self.params = to_jax(cfg, weights, dt)
    self.tasks = [to_arrays(cfg, b, dt) for b in batches]
    grad_fn = meta_loss_and_grad(cfg, task_map)
    opt = optax.adam(cfg.outer_lr)
    self._meta_grad = jax.jit(lambda p, t: grad_fn(p, t)[1])

    def step(params, opt_state, tasks):
      loss, g = grad_fn(params, tasks)
      updates, opt_state = opt.update(g, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    self._step = jax.jit(step, donate_argnums=(0, 1))
    # Copies, so that donating them never invalidates ``self.params``.
    self.state = (jax.tree.map(jnp.copy, self.params), opt.init(self.params))
    self._loss = None
    self._i = 0

  def meta_grad(self, batch_index: int = 0) -> dict[str, np.ndarray]:
    return from_jax(self._meta_grad(self.params, self.tasks[batch_index]))

  def step(self) -> None:
    params, opt_state, self._loss = self._step(*self.state, self.tasks[self._i % len(self.tasks)])
    self.state = (params, opt_state)
    self._i += 1

  def sync(self) -> None:
    import jax
    jax.block_until_ready((self.state, self._loss))
