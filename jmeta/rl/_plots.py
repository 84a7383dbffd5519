"""Trajectories of a 2D-navigation policy before and after adaptation (Finn et al. 2017, Fig. 4)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np

from jmeta._base import MetaLearner
from jmeta.rl._envs import Env
from jmeta.rl._estimators import rollouts
from jmeta.rl._policies import gaussian


def nav_positions(learner: MetaLearner, meta_params: Any, apply_fn: Callable, env: Env,
                  goal: jax.Array, key: jax.Array, *, steps: int,
                  episodes: int = 3) -> np.ndarray:
  """Positions of ``episodes`` episodes after ``steps`` adaptation steps to ``goal``.

  Returns:
    ``(episodes, env.horizon, 2)``: the point's position before each action
    (the first is the origin).
  """
  adapt_key, roll_key = jax.random.split(key)
  params = learner.adapt(meta_params, adapt_key, goal, steps=steps).params
  traj = rollouts(env, apply_fn, gaussian, params, goal, roll_key, episodes)
  return np.asarray(traj.obs[..., :2])


def plot_nav_adaptation(learner: MetaLearner, meta_params: Any, apply_fn: Callable, env: Env,
                        key: jax.Array, path: Optional[str] = None, *, goals: int = 4,
                        steps: Sequence[int] = (0, 1), episodes: int = 3):
  """One panel per held-out goal: the trajectories after each number of ``steps``.

  Writes ``path`` (PNG) when given; returns the matplotlib figure.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  if path is not None:
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  goal_key, key = jax.random.split(key)
  tasks = env.sample_batch(goal_key, goals)
  fig, axes = plt.subplots(1, goals, figsize=(3.2 * goals, 3.2), squeeze=False)
  styles = [":", "-", "--", "-."]
  for i, ax in enumerate(axes[0]):
    goal = tasks.params[i]
    for j, s in enumerate(steps):
      pos = nav_positions(learner, meta_params, apply_fn, env, goal, jax.random.fold_in(key, i),
                          steps=s, episodes=episodes)
      color = f"C{j}"
      for e in range(episodes):
        ax.plot(pos[e, :, 0], pos[e, :, 1], styles[j % len(styles)], color=color, lw=1,
                label=f"{s} step{'s' if s != 1 else ''}" if e == 0 else None)
    ax.plot(*np.asarray(goal), "*", color="red", ms=12, label="goal")
    ax.plot(0, 0, "o", color="black", ms=4)
    ax.set_xlim(-0.7, 0.7)
    ax.set_ylim(-0.7, 0.7)
    ax.set_aspect("equal")
    ax.set_title(f"goal ({float(goal[0]):.2f}, {float(goal[1]):.2f})")
  axes[0][0].legend(loc="lower left", fontsize=7)
  fig.suptitle("2D navigation: trajectories before and after adaptation")
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=100)
    plt.close(fig)
  return fig
