"""Plots written by the command line (matplotlib, no display needed)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot_sinusoid_adaptation(learner, meta_params, apply_fn, family, key, path: str,
                             steps: Sequence[int] = (1, 10)) -> None:
  """Finn et al. (2017) Figure 2: true curve, support points, before and after adaptation."""
  plt = _pyplot()
  k_params, k_data = jax.random.split(key)
  task_params = family.sample_params(k_params)
  task = family.make_task(k_data, task_params)
  xs = jnp.linspace(-5.0, 5.0, 200, dtype=task.support_x.dtype)[:, None]
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(xs[:, 0], family.target_fn(task_params, xs)[:, 0], color="red", label="ground truth")
  ax.plot(xs[:, 0], apply_fn(learner.adapt(meta_params, task.support_x, task.support_y, steps=0).params, xs)[:, 0],
          ":", color="tab:blue", label="pre-update")
  styles = ["--", "-"]
  for i, s in enumerate(steps):
    adapted = learner.adapt(meta_params, task.support_x, task.support_y, steps=s).params
    ax.plot(xs[:, 0], apply_fn(adapted, xs)[:, 0], styles[i % 2], color="tab:green",
            alpha=0.5 + 0.5 * i / max(1, len(steps) - 1), label=f"{s} grad step{'s' if s != 1 else ''}")
  ax.scatter(np.asarray(task.support_x[:, 0]), np.asarray(task.support_y[:, 0]), marker="^",
             color="purple", zorder=5, label=f"{task.support_x.shape[0]} support points")
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  ax.set_title("adaptation to a held-out sinusoid")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_loss_curve(table, metric: str, path: str, title: str) -> None:
  """Meta-test metric (mean and 95% CI) against the number of adaptation steps."""
  plt = _pyplot()
  steps = sorted(table)
  means = np.array([table[s][metric][0] for s in steps])
  cis = np.array([table[s][metric][1] for s in steps])
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.errorbar(steps, means, yerr=cis, marker="o", capsize=3)
  ax.set_xlabel("adaptation steps")
  ax.set_ylabel(metric)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
