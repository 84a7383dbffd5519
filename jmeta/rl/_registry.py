"""The meta-RL entries of the one registry (``jmeta._registry``): sources and learners of kind ``"rl"``.

Sources: ``point-nav`` (2D navigation, Finn et al. 2017, with a Gaussian MLP
policy) and ``bandit`` (Bernoulli bandits, Duan et al. 2016, with a GRU
policy). Learners: ``maml-rl`` (``jmeta.rl.maml_rl``, through the trainer's
usual ``make_meta_step``) and ``rl2`` (``jmeta.rl.rl2``, whose PPO iteration is
its own ``MetaStep``). ``jmeta train --task point-nav --algo maml-rl`` and
``--task bandit --algo rl2`` then run through the one trainer.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jmeta.rl._envs import bernoulli_bandit, point_nav
from jmeta.rl._maml_rl import maml_rl
from jmeta.rl._policies import GaussianMLP, GRUPolicy
from jmeta.rl._promp import promp_iteration
from jmeta.rl._rl2 import rl2

_BACKBONES = {"point-nav": "gaussian-mlp", "bandit": "gru"}
_LEARNER_OF = {"gaussian-mlp": "maml-rl", "gru": "rl2"}


def _nav_defaults(cfg: dict) -> dict:
  # Finn et al. (2017), Sec. 5.3: 20 goals x 20 episodes, one step of 0.1, 100x100 ReLU policy.
  return {"meta_batch": 20, "trajectories": 20, "hidden": 100, "iterations": 300,
          "log_every": 10, "val_every": 50, "val_tasks": 40, "eval_tasks": 100, "eval_batch": 50,
          "eval_steps": [0, 1, 3], "inner_lr": 0.1, "inner_steps": 1, "meta_lr": 3e-3,
          "task_map": "vmap"}


def _bandit_defaults(cfg: dict) -> dict:
  return {"arms": 5, "pulls": 10, "meta_batch": 64, "hidden": 128, "iterations": 1500,
          "log_every": 50, "val_every": 500, "val_tasks": 200, "eval_tasks": 1000,
          "eval_batch": 500, "eval_steps": [0], "inner_steps": 0, "meta_lr": 1e-3,
          "entropy_coef": 0.01, "task_map": "vmap"}


def _splits(make):
  def splits(cfg, Splits):
    env = make(cfg)
    return Splits(env, env, env)  # validation and meta-test tasks: fresh draws (other keys)
  return splits


_ENVS = {
    "point-nav": (lambda cfg: point_nav(), _nav_defaults, {"trajectories"},
                  "Finn et al. 2017, Sec. 5.3 (2D navigation)"),
    "bandit": (lambda cfg: bernoulli_bandit(cfg["arms"], cfg["pulls"]), _bandit_defaults,
               {"arms", "pulls"}, "Duan et al. 2016 (Bernoulli bandits, means U[0, 1])"),
}


def source(name: str, SourceSpec, Splits):  # pylint: disable=invalid-name
  """The ``SourceSpec`` of meta-RL source ``name`` (types passed in: no import cycle)."""
  make, defaults, options, reference = _ENVS[name]
  split = _splits(make)
  return SourceSpec(name, "rl", True, _BACKBONES[name], defaults,
                    frozenset({"task", "hidden"} | options),
                    lambda cfg: split(cfg, Splits), reference)


def _learner_defaults(algo: str):
  def defaults(cfg: dict, src) -> dict:
    if _LEARNER_OF.get(src.backbone) != algo:
      other = [n for n, b in _BACKBONES.items() if _LEARNER_OF[b] == algo]
      raise ValueError(f"--algo {algo} runs on --task {', '.join(other)}; --task {src.name}"
                       f" takes --algo {_LEARNER_OF[src.backbone]}")
    out = {"outer_opt": "adam", "lr_halve_every": None}
    if algo == "maml-rl":
      out.update(first_order=False, inner_opt="sgd", outer_objective="dice")
    return out
  return defaults


def learner(name: str, LearnerSpec):  # pylint: disable=invalid-name
  """The ``LearnerSpec`` of meta-RL learner ``name``."""
  if name == "maml-rl":
    return LearnerSpec("maml-rl", "jmeta.rl.maml_rl", ("rl",), False, _learner_defaults(name),
                       frozenset({"inner_steps", "inner_lr", "first_order", "outer_objective"}), None,
                       "Finn et al. 2017 (DiCE: Foerster et al. 2018)")
  return LearnerSpec("rl2", "jmeta.rl.rl2", ("rl",), False, _learner_defaults(name),
                     frozenset({"entropy_coef"}), None,
                     "Duan et al. 2016 (PPO: Schulman et al. 2017)")


def build(cfg: dict, key: jax.Array, env) -> tuple[Any, ...]:
  """``(params, apply_fn, learner, train_learner, outer_opt, selection, make_step)`` of a run."""
  outer = optax.adam(cfg["meta_lr"])
  h = cfg["hidden"]
  if cfg["algo"] == "maml-rl":
    policy = GaussianMLP(env.action_size, hidden=(h, h))
    params = policy.init(key, jnp.zeros((env.obs_size,)))
    inner = dict(steps=cfg["inner_steps"], inner_lr=cfg["inner_lr"],
                 trajectories=cfg["trajectories"], first_order=cfg["first_order"])
    learner = maml_rl(env, policy.apply, **inner)
    make_step = None
    if cfg["outer_objective"] == "promp":
      def make_step():
        return promp_iteration(env, policy.apply, outer, meta_batch=cfg["meta_batch"],
                               clip_norm=cfg["clip_norm"], **inner).step
    return params, policy.apply, learner, learner, outer, "return", make_step
  gru = GRUPolicy(actions=env.action_size, hidden=h)
  params = gru.init(key, gru.initial_carry(), jnp.ones((env.obs_size,)), jnp.array(0), 0.0, True)
  agent = rl2(env, gru.apply, gru.initial_carry(), outer, entropy_coef=cfg["entropy_coef"],
              clip_norm=cfg["clip_norm"] or 1.0)
  return (params, gru.apply, agent.learner, agent.learner, outer, "return",
          lambda: agent.step)
