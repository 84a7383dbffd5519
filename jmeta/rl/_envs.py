"""Meta-RL environments as pure functions: 2D navigation, a planar point mass, Bernoulli bandits.

An environment is an :class:`Env`, a ``NamedTuple`` of pure functions (every
one ``jit``- and ``vmap``-able) and static facts:

* ``sample_task(key) -> task``: a task of the family (a pytree of arrays);
* ``reset(key, task) -> (state, obs)``: the first state and observation of an
  episode of that task;
* ``step(state, action) -> (state, obs, reward, done)``.

The state holds the task and the time step, so a rollout is a ``lax.scan`` of
``step`` over a static horizon. ``done`` is true on the last step of an
episode (all episodes here have a fixed length). An ``Env`` is also a task
source: ``sample_batch(key, n)`` draws ``n`` tasks, each with its own rollout
key, as an :class:`RLTask` batch.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jmeta import _validate

PyTree = Any


class RLTask(NamedTuple):
  """One meta-RL task and the key of its rollouts (a batch: leading task axis).

  Attributes:
    key: PRNG key of every rollout of the task (pre- and post-adaptation).
    params: the task (e.g. the goal), as drawn by ``Env.sample_task``.
  """

  key: jax.Array
  params: PyTree


def check_rl_batch(tasks: RLTask, name: str = "tasks") -> RLTask:
  """Checks an :class:`RLTask` batch: a key per task, every task leaf with the same task axis.

  Raises:
    ValueError: naming ``name`` and the field whose leading axis differs.
  """
  key_shape = tuple(tasks.key.shape)
  if len(key_shape) < 1 or key_shape[0] == 0:
    raise ValueError(f"{name}.key needs a leading task axis of at least one key; got shape"
                     f" {key_shape} (batch tasks with env.sample_batch(key, n)).")
  for path, leaf in jax.tree_util.tree_flatten_with_path(tasks.params)[0]:
    shape = tuple(jnp.shape(leaf))
    if not shape or shape[0] != key_shape[0]:
      raise ValueError(f"{name}.params{jax.tree_util.keystr(path)} needs the leading task axis"
                       f" of {name}.key ({key_shape[0]}); got shape {shape}.")
  return tasks


_validate.register_batch_check(RLTask, check_rl_batch)


class Env(NamedTuple):
  """A task family of episodic environments as pure functions.

  Attributes:
    name: short name (``describe()``).
    reset: ``reset(key, task) -> (state, obs)``.
    step: ``step(state, action) -> (state, obs, reward, done)``.
    sample_task: ``sample_task(key) -> task``.
    obs_size: observation width.
    action_size: action width (continuous) or number of actions (discrete).
    discrete: actions are ints in ``[0, action_size)``.
    horizon: steps per episode.
    trial_episodes: episodes per trial (RL²: the bandit's pulls ``n``).
    facts: extra JSON-serialisable facts for ``describe()``.
  """

  name: str
  reset: Callable[[jax.Array, PyTree], tuple[PyTree, jax.Array]]
  step: Callable[[PyTree, jax.Array], tuple[PyTree, jax.Array, jax.Array, jax.Array]]
  sample_task: Callable[[jax.Array], PyTree]
  obs_size: int
  action_size: int
  discrete: bool
  horizon: int
  trial_episodes: int = 1
  facts: tuple = ()

  def sample_batch(self, key: jax.Array, n: int) -> RLTask:
    """``n`` tasks with their rollout keys (a task source, like ``TaskFamily``)."""
    task_key, roll_key = jax.random.split(key)
    tasks = jax.vmap(self.sample_task)(jax.random.split(task_key, n))
    return RLTask(jax.random.split(roll_key, n), tasks)

  def describe(self) -> dict[str, Any]:
    """JSON-serialisable facts about the family."""
    return {"name": self.name, "horizon": self.horizon, "obs_size": self.obs_size,
            "action_size": self.action_size, "discrete": self.discrete,
            "trial_episodes": self.trial_episodes, **dict(self.facts)}


def _check_positive_int(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be a positive int; got {value!r}.")
  return value


def _check_positive(value: Any, name: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
    raise ValueError(f"{name} must be a positive number; got {value!r}.")
  return float(value)


# --------------------------------------------------------------------------- 2D navigation


class PointState(NamedTuple):
  """State of :func:`point_nav`: position, goal, time step."""

  pos: jax.Array
  goal: jax.Array
  t: jax.Array


def point_nav(*, horizon: int = 100, goal_range: float = 0.5, max_action: float = 0.1,
              observe_goal: bool = False) -> Env:
  """2D point navigation of Finn et al. (2017), Sec. 5.3.

  The agent starts at the origin; a task is a goal drawn uniformly in
  ``[-goal_range, goal_range]^2``. An action (clipped to
  ``[-max_action, max_action]`` per coordinate) moves the point by itself; the
  reward is minus the distance to the goal after the move. The observation is
  the position. Episodes last ``horizon`` steps (no early termination: the
  rollout stays a fixed-length ``scan``).

  Args:
    horizon: steps per episode (Finn et al.: 100).
    goal_range: half-width of the goal square (0.5: the unit square).
    max_action: the action clip.
    observe_goal: append the goal to the observation (the goal-aware oracle).

  Returns:
    An ``Env`` with 2D continuous actions.
  """
  _check_positive_int(horizon, "horizon")
  goal_range = _check_positive(goal_range, "goal_range")
  max_action = _check_positive(max_action, "max_action")

  def observe(state):
    return jnp.concatenate([state.pos, state.goal]) if observe_goal else state.pos

  def sample_task(key):
    return jax.random.uniform(key, (2,), minval=-goal_range, maxval=goal_range)

  def reset(key, goal):
    del key
    goal = jnp.asarray(goal)
    state = PointState(jnp.zeros_like(goal), goal, jnp.zeros((), jnp.int32))
    return state, observe(state)

  def step(state, action):
    pos = state.pos + jnp.clip(action, -max_action, max_action)
    reward = -jnp.sqrt(jnp.sum((pos - state.goal) ** 2))
    new = PointState(pos, state.goal, state.t + 1)
    return new, observe(new), reward, new.t >= horizon

  return Env("point-nav", reset, step, sample_task, 4 if observe_goal else 2, 2, False, horizon,
             facts=(("goal_range", goal_range), ("max_action", max_action),
                    ("observe_goal", observe_goal)))


# --------------------------------------------------------------------------- planar point mass


class MassState(NamedTuple):
  """State of :func:`point_mass`: position, velocity, target, time step."""

  pos: jax.Array
  vel: jax.Array
  target: jax.Array
  t: jax.Array


def point_mass(*, mode: str = "velocity", horizon: int = 100, dt: float = 0.1,
               damping: float = 1.0, max_speed: float = 1.0, ctrl_cost: float = 0.05) -> Env:
  """A locomotion-style family on a damped planar point mass (no physics engine).

  Dynamics (unit mass, semi-implicit Euler): with the force ``a`` clipped to
  ``[-1, 1]^2``, ``v' = v + dt * (a - damping * v)`` and ``x' = x + dt * v'``;
  the steady speed of a constant unit force is ``1 / damping``. The
  observation is ``(x, v)`` (4 numbers), the start is at rest at the origin.
  As in the half-cheetah families of Finn et al. (2017) the reward is a
  locomotion term minus a control cost ``ctrl_cost * |a|^2``:

  * ``mode="velocity"``: a target velocity ``v*`` with speed uniform in
    ``[0, max_speed]`` and a uniform heading; reward ``-|v' - v*|``.
  * ``mode="direction"``: a direction ``d``, ``+x`` or ``-x`` with probability
    1/2 (half-cheetah forward/backward); reward ``d . v'``.

  Args:
    mode: ``"velocity"`` or ``"direction"``.
    horizon: steps per episode.
    dt: time step.
    damping: linear drag coefficient.
    max_speed: the largest target speed (``mode="velocity"``).
    ctrl_cost: weight of the control cost.

  Returns:
    An ``Env`` with 2D continuous actions (forces).
  """
  if mode not in ("velocity", "direction"):
    raise ValueError(f"mode must be 'velocity' or 'direction'; got {mode!r}.")
  _check_positive_int(horizon, "horizon")
  dt, damping, max_speed = (_check_positive(v, n) for v, n in
                            ((dt, "dt"), (damping, "damping"), (max_speed, "max_speed")))
  if isinstance(ctrl_cost, bool) or not isinstance(ctrl_cost, (int, float)) or ctrl_cost < 0:
    raise ValueError(f"ctrl_cost must be a non-negative number; got {ctrl_cost!r}.")

  def sample_task(key):
    k1, k2 = jax.random.split(key)
    if mode == "direction":
      sign = jnp.where(jax.random.bernoulli(k1), 1.0, -1.0)
      return jnp.stack([sign, jnp.zeros_like(sign)])
    speed = jax.random.uniform(k1, (), minval=0.0, maxval=max_speed)
    angle = jax.random.uniform(k2, (), minval=0.0, maxval=2 * jnp.pi)
    return speed * jnp.stack([jnp.cos(angle), jnp.sin(angle)])

  def reset(key, target):
    del key
    target = jnp.asarray(target)
    zero = jnp.zeros_like(target)
    state = MassState(zero, zero, target, jnp.zeros((), jnp.int32))
    return state, jnp.concatenate([zero, zero])

  def step(state, action):
    force = jnp.clip(action, -1.0, 1.0)
    vel = state.vel + dt * (force - damping * state.vel)
    pos = state.pos + dt * vel
    if mode == "direction":
      progress = jnp.dot(state.target, vel)
    else:
      progress = -jnp.sqrt(jnp.sum((vel - state.target) ** 2) + 1e-12)
    reward = progress - ctrl_cost * jnp.sum(force ** 2)
    new = MassState(pos, vel, state.target, state.t + 1)
    return new, jnp.concatenate([pos, vel]), reward, new.t >= horizon

  return Env(f"point-mass-{mode}", reset, step, sample_task, 4, 2, False, horizon,
             facts=(("mode", mode), ("dt", dt), ("damping", damping), ("max_speed", max_speed),
                    ("ctrl_cost", float(ctrl_cost))))


# --------------------------------------------------------------------------- bandits


class BanditState(NamedTuple):
  """State of :func:`bernoulli_bandit`: the arms' means and the key of the next reward."""

  means: jax.Array
  key: jax.Array


def bernoulli_bandit(arms: int = 5, pulls: int = 10) -> Env:
  """Bernoulli multi-armed bandits of Duan et al. (2016), RL².

  A task is ``arms`` success probabilities drawn from ``U[0, 1]``; pulling arm
  ``a`` pays 1 with probability ``means[a]``, else 0. An episode is one pull
  (``horizon=1``, ``done`` every step); a trial is ``pulls`` episodes of one
  task (``trial_episodes``). The observation is a constant ``[1.0]``: a
  bandit has no state, an RL² policy learns from the rewards fed back.

  Args:
    arms: number of arms ``k``.
    pulls: pulls per trial ``n``.

  Returns:
    A discrete ``Env`` with ``arms`` actions.
  """
  _check_positive_int(arms, "arms")
  _check_positive_int(pulls, "pulls")

  def sample_task(key):
    return jax.random.uniform(key, (arms,))

  def reset(key, means):
    means = jnp.asarray(means)
    return BanditState(means, key), jnp.ones((1,), means.dtype)

  def step(state, action):
    key, sub = jax.random.split(state.key)
    p = state.means[action]
    reward = jax.random.bernoulli(sub, p).astype(state.means.dtype)
    return BanditState(state.means, key), jnp.ones((1,), p.dtype), reward, jnp.asarray(True)

  return Env(f"bandit-{arms}x{pulls}", reset, step, sample_task, 1, arms, True, 1,
             trial_episodes=pulls, facts=(("arms", arms), ("pulls", pulls)))
