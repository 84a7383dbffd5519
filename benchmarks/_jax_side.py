"""The jmeta side of every benchmark, through jmeta's public API.

``jmeta.maml(loss_fn, optax.sgd(lr), steps=...)`` (or ``jmeta.anil``,
``jmeta.protonet``) driven by ``jmeta.make_meta_step(learner, optax.adam(lr))``,
on jmeta's own models (``jmeta.MLP``, ``jmeta.ConvNet``, ``jmeta.ConvBody``),
starting from the canonical weights of ``benchmarks._configs``. Imports jax,
never torch.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np

from benchmarks._configs import Config


def _to_flax(cfg: Config, w: dict[str, np.ndarray], dtype) -> dict:
  """Canonical (PyTorch-layout) weights to jmeta's flax parameter tree."""
  import jax.numpy as jnp
  a = lambda v: jnp.asarray(v, dtype=dtype)
  if cfg.model == "mlp":
    names = ["hidden_0", "hidden_1", "head"]
    return {"params": {n: {"kernel": a(w[f"l{i}.weight"].T), "bias": a(w[f"l{i}.bias"])}
                       for i, n in enumerate(names)}}
  body = {}
  for i in range(4):
    body[f"conv_{i}"] = {"kernel": a(w[f"conv{i}.weight"].transpose(2, 3, 1, 0)),
                         "bias": a(w[f"conv{i}.bias"])}
    body[f"norm_{i}"] = {"scale": a(w[f"norm{i}.weight"]), "bias": a(w[f"norm{i}.bias"])}
  if cfg.algo == "protonet":  # the embedding alone: jmeta.ConvBody's tree
    return {"params": body}
  return {"params": {"body": body, "head": {"kernel": a(w["head.weight"].T),
                                            "bias": a(w["head.bias"])}}}


def _from_flax(cfg: Config, p: dict) -> dict[str, np.ndarray]:
  """jmeta's flax parameter tree (or gradient) back to the canonical layout."""
  p = {k: v for k, v in p["params"].items()}
  g = lambda v: np.asarray(v, dtype=np.float64)
  out = {}
  if cfg.model == "mlp":
    for i, n in enumerate(["hidden_0", "hidden_1", "head"]):
      out[f"l{i}.weight"] = g(p[n]["kernel"]).T
      out[f"l{i}.bias"] = g(p[n]["bias"])
    return out
  body = p if cfg.algo == "protonet" else p["body"]
  for i in range(4):
    out[f"conv{i}.weight"] = g(body[f"conv_{i}"]["kernel"]).transpose(3, 2, 0, 1)
    out[f"conv{i}.bias"] = g(body[f"conv_{i}"]["bias"])
    out[f"norm{i}.weight"] = g(body[f"norm_{i}"]["scale"])
    out[f"norm{i}.bias"] = g(body[f"norm_{i}"]["bias"])
  if cfg.algo == "protonet":
    return out
  out["head.weight"] = g(p["head"]["kernel"]).T
  out["head.bias"] = g(p["head"]["bias"])
  return out


def _to_task(cfg: Config, batch, dtype):
  """A numpy batch to a device ``jmeta.Task`` (conv images NCHW -> NHWC)."""
  import jax
  import jax.numpy as jnp
  import jmeta
  sx, sy, qx, qy = batch
  if cfg.model == "conv":
    sx, qx = sx.transpose(0, 1, 3, 4, 2), qx.transpose(0, 1, 3, 4, 2)
    sy, qy = sy.astype(np.int32), qy.astype(np.int32)
  else:
    sy, qy = sy.astype(dtype), qy.astype(dtype)
  task = jmeta.Task(jnp.asarray(sx, dtype), jnp.asarray(sy), jnp.asarray(qx, dtype), jnp.asarray(qy))
  return jax.block_until_ready(task)


class JmetaImpl:
  """jmeta on a config: ``step()`` runs one meta-step, ``sync()`` waits.

  Args:
    cfg: the configuration.
    weights: canonical initial weights.
    batches: numpy task batches (cycled).
    dtype: ``"float32"`` or ``"float64"`` (the latter needs ``jax_enable_x64``).
    scan: if > 1, one dispatch runs ``scan`` meta-steps inside one ``jit``
      (``lax.scan`` over ``step_fn``); ``step()`` then counts as ``scan`` steps.
    task_map: how the timed meta-step maps its task batch (``make_meta_step``).
    metrics: ``make_meta_step``'s ``metrics``: ``"lean"`` (default, as README's
      quickstart) or ``"full"``.
    donate: ``make_meta_step``'s ``donate`` (default ``True``, as README's
      quickstart: ``update`` reuses the state's buffers).
  """

  name = "jmeta"

  def __init__(self, cfg: Config, weights, batches, dtype: str = "float32", scan: int = 1,
               task_map: str = "auto", metrics: str = "lean", donate: bool = True):
    import jax
    import jax.numpy as jnp
    import optax
    import jmeta
    self.cfg, self.scan = cfg, scan
    dt = jnp.dtype(dtype)
    if cfg.model == "mlp":
      net = jmeta.MLP()
      loss_fn = jmeta.mse_loss(net.apply)
    else:
      net = jmeta.ConvNet(ways=cfg.ways)
      loss_fn = jmeta.cross_entropy_loss(net.apply)
    inner = optax.sgd(cfg.inner_lr)
    if cfg.algo == "protonet":
      self.learner = jmeta.protonet(jmeta.ConvBody().apply, ways=cfg.ways)
    elif cfg.algo == "anil":
      self.learner = jmeta.anil(loss_fn, inner, adapt=lambda p: jmeta.path_mask(p, "head"),
                                steps=cfg.inner_steps, first_order=cfg.first_order,
                                remat=cfg.remat)
    else:
      self.learner = jmeta.maml(loss_fn, inner, steps=cfg.inner_steps,
                                first_order=cfg.first_order, remat=cfg.remat)
    self._outer_opt = optax.adam(cfg.outer_lr)
    self.metrics = metrics
    self.meta_step = jmeta.make_meta_step(self.learner, self._outer_opt, task_map=task_map,
                                          metrics=metrics, donate=donate)
    self.params = _to_flax(cfg, weights, dt)
    self.tasks = [_to_task(cfg, b, dt) for b in batches]
    self.state = self.meta_step.init(jax.random.PRNGKey(0), self.params)
    self._i = 0
    learner = self.learner
    self.meta_params = learner.init(jax.random.PRNGKey(0), self.params)

    @jax.jit
    def meta_grad(mp, tasks):
      g, _ = jmeta.mean_over_tasks(lambda t: learner.task_grad(mp, t, 0), tasks)
      return g.get("embed", g) if cfg.algo == "protonet" else g
    self._meta_grad = meta_grad
    if scan > 1:
      stacked = [jax.tree.map(lambda *xs: jnp.stack(xs), *[self.tasks[(j + k) % len(self.tasks)]
                                                           for k in range(scan)])
                 for j in range(len(self.tasks))]
      self.stacked = stacked
      step_fn = self.meta_step.step_fn

      @jax.jit
      def multi(state, tasks):
        return jax.lax.scan(step_fn, state, tasks)
      self._multi = multi

  # -- correctness
  def meta_grad(self, batch_index: int = 0) -> dict[str, np.ndarray]:
    g = self._meta_grad(self.meta_params, self.tasks[batch_index])
    return _from_flax(self.cfg, g)

  # -- speed
  def step(self) -> None:
    if self.scan > 1:
      self.state, self._metrics = self._multi(self.state, self.stacked[self._i % len(self.stacked)])
    else:
      self.state, self._metrics = self.meta_step.update(self.state, self.tasks[self._i % len(self.tasks)])
    self._i += 1

  def sync(self) -> None:
    import jax
    jax.block_until_ready((self.state, self._metrics))

  @property
  def steps_per_call(self) -> int:
    return self.scan

  def cost_flops(self) -> Optional[float]:
    """XLA's cost-analysis FLOPs of one meta-step (None if unavailable).

    XLA's cost analysis counts a while loop's body once, so the count is taken
    on the ``task_map="vmap"`` form of the same meta-step (the timed default
    scans over image tasks on the CPU; the arithmetic is the same). A
    multi-step inner loop is a ``lax.scan`` too: for ``inner_steps > 1`` the
    figure is a lower bound (see ``flops_note``).
    """
    import jax
    import jmeta
    try:
      step = jmeta.make_meta_step(self.learner, self._outer_opt, task_map="vmap",
                                  metrics=self.metrics)
      compiled = jax.jit(step.step_fn).lower(self.state, self.tasks[0]).compile()
      ca = compiled.cost_analysis()
      if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
      flops = ca.get("flops") if ca else None
      return float(flops) if flops is not None and flops > 0 else None
    except Exception:  # noqa: BLE001 - an unsupported backend or API change
      return None


def flops_note(cfg) -> str:
  """How to read ``cost_flops`` for ``cfg``."""
  if cfg.inner_steps > 1:
    return (f"lower bound: XLA counts the {cfg.inner_steps}-step inner scan's body once")
  return "exact count of the meta-step's arithmetic"


def peak_matmul_flops(n: int = 2048, reps: int = 10) -> dict[str, Any]:
  """The machine's measured float32 matmul rate through XLA (best of ``reps``)."""
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
  f = jax.jit(jnp.matmul)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return {"n": n, "seconds": best, "flops_per_s": 2.0 * n ** 3 / best}
