"""MAML-RL on 2D navigation (Finn et al. 2017, Sec. 5.3, Fig. 4): return after 0, 1 and 3 steps.

Usage::

  python benchmarks/meta_rl.py                       # the full comparison (see README)
  python benchmarks/meta_rl.py --iterations 5 --eval-tasks 20 --hidden 32 --out /tmp/meta_rl.json

Four policies (Gaussian MLP, ``--hidden`` x 2 ReLU units, actions clipped to
0.1, horizon 100), all adapted on held-out goals with the same inner loop
(``--trajectories`` episodes per step, vanilla policy gradient of step
``--inner-lr`` with the linear feature baseline):

* ``maml``: ``jmeta.rl.maml_rl`` (DiCE, one inner step) meta-trained for
  ``--iterations`` meta-iterations of ``--meta-batch`` goals, Adam outer step;
* ``pretrained``: the same budget spent on the plain policy-gradient objective
  over all goals (``maml_rl`` with ``steps=0``), then fine-tuned the same way;
* ``random``: the random initialisation, fine-tuned the same way;
* ``oracle``: a policy that observes the goal, trained with the same budget
  (shown at 0 steps: it needs no adaptation).

Reports the mean undiscounted return (sum of minus distances over 100 steps)
with 95% CIs over ``--eval-tasks`` held-out goals (the same goals for every
policy), the training CPU and wall time of each, and the environment steps per
second of the compiled rollouts. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import optax

import jmeta
from jmeta import rl

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
EVAL_STEPS = (0, 1, 3)


def train(learner, env, params, key, args, name):
  """Meta-trains ``learner`` with ``jmeta.fit``; returns params and CPU/wall seconds."""
  it = rl.meta_iteration(learner, env, optax.adam(args.meta_lr), meta_batch=args.meta_batch,
                         clip_norm=args.clip_norm)
  state = it.init(key, params)
  cpu0, wall0 = time.process_time(), time.perf_counter()
  last = None
  for state, rec in jmeta.fit(it.step, state, env.sample_batch, key=key,
                               iterations=args.iterations, meta_batch=args.meta_batch,
                               log_every=args.log_every):
    last = rec
    print(f"  {name}: step {rec['step']:5d}  return before {rec['return_before']:8.2f}"
          f"  after {rec['return']:8.2f}  skipped {int(rec['nonfinite'])}", flush=True)
  jax.block_until_ready(state)
  return state.meta_params, {"cpu_s": time.process_time() - cpu0,
                             "wall_s": time.perf_counter() - wall0,
                             "skipped": int(state.skipped), "last": last}


def env_steps_per_second(env, policy, params, args) -> dict:
  """Steady-state steps/s of the compiled rollouts of one meta-batch (compile timed apart)."""
  tasks = env.sample_batch(jax.random.key(0), args.meta_batch)
  roll = jax.jit(jax.vmap(lambda t, k: rl.rollouts(env, policy.apply, rl.gaussian, params, t, k,
                                                   args.trajectories)))
  t0 = time.perf_counter()
  jax.block_until_ready(roll(tasks.params, tasks.key))
  compile_s = time.perf_counter() - t0
  reps = 5
  t0 = time.perf_counter()
  for i in range(reps):
    jax.block_until_ready(roll(tasks.params, jax.random.split(jax.random.key(i + 1),
                                                              args.meta_batch)))
  per = (time.perf_counter() - t0) / reps
  steps = args.meta_batch * args.trajectories * env.horizon
  return {"steps_per_rollout_batch": steps, "compile_s": compile_s, "steps_per_s": steps / per}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--iterations", type=int, default=500)
  ap.add_argument("--meta-batch", type=int, default=20)
  ap.add_argument("--trajectories", type=int, default=20)
  ap.add_argument("--hidden", type=int, default=100)
  ap.add_argument("--inner-lr", type=float, default=0.1)
  ap.add_argument("--meta-lr", type=float, default=3e-3)
  ap.add_argument("--clip-norm", type=float, default=None)
  ap.add_argument("--eval-tasks", type=int, default=100)
  ap.add_argument("--log-every", type=int, default=None)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=str(RESULTS / "meta_rl.json"))
  args = ap.parse_args()
  args.log_every = args.log_every or max(1, min(50, args.iterations))

  env, oracle_env = rl.point_nav(), rl.point_nav(observe_goal=True)
  policy = rl.GaussianMLP(2, hidden=(args.hidden, args.hidden))
  k_init, k_maml, k_pre, k_oracle, k_test = jax.random.split(jax.random.key(args.seed), 5)
  params = policy.init(k_init, jnp.zeros((2,)))
  oracle_params = policy.init(k_init, jnp.zeros((4,)))
  common = dict(trajectories=args.trajectories, inner_lr=args.inner_lr)

  speed = env_steps_per_second(env, policy, params, args)
  print(f"compiled rollouts: {speed['steps_per_s']:.3g} env steps/s"
        f" ({speed['steps_per_rollout_batch']} steps per batch, compile {speed['compile_s']:.1f} s)")

  trained, timing = {"random": params}, {}
  trained["maml"], timing["maml"] = train(rl.maml_rl(env, policy.apply, steps=1, **common), env,
                                          params, k_maml, args, "maml")
  trained["pretrained"], timing["pretrained"] = train(
      rl.maml_rl(env, policy.apply, steps=0, **common), env, params, k_pre, args, "pretrained")
  oracle_params, timing["oracle"] = train(
      rl.maml_rl(oracle_env, policy.apply, steps=0, **common), oracle_env, oracle_params,
      k_oracle, args, "oracle")

  # The same held-out goals and rollout keys for every policy.
  table = {}
  for name, p in trained.items():
    learner = rl.maml_rl(env, policy.apply, steps=1, **common)
    out = jmeta.evaluate(learner, p, env.sample_batch, k_test, num_tasks=args.eval_tasks,
                         steps=EVAL_STEPS, batch_size=min(args.eval_tasks, 50))
    table[name] = {s: out[s]["return"] for s in EVAL_STEPS}
  learner = rl.maml_rl(oracle_env, policy.apply, steps=0, **common)
  out = jmeta.evaluate(learner, oracle_params, oracle_env.sample_batch, k_test,
                       num_tasks=args.eval_tasks, steps=(0,), batch_size=min(args.eval_tasks, 50))
  table["oracle"] = {0: out[0]["return"]}

  print(f"\nreturn on {args.eval_tasks} held-out goals (mean ± 95% CI), after k adaptation steps:")
  print(f"{'policy':12s}" + "".join(f"{f'k={s}':>20s}" for s in EVAL_STEPS) + f"{'train CPU s':>14s}")
  for name, row in table.items():
    cells = "".join(f"{row[s][0]:12.2f} ± {row[s][1]:5.2f}" if s in row else f"{'':>20s}"
                    for s in EVAL_STEPS)
    cpu = timing.get(name, {}).get("cpu_s")
    print(f"{name:12s}{cells}{'' if cpu is None else f'{cpu:14.1f}'}")

  result = {"config": vars(args), "env": env.describe(), "rollout_speed": speed,
            "return": {n: {str(s): v for s, v in row.items()} for n, row in table.items()},
            "training": {n: {k: v for k, v in t.items() if k != "last"} for n, t in timing.items()},
            "backend": jax.default_backend(), "jax": jax.__version__}
  path = pathlib.Path(args.out)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=2))
  print(f"\nwrote {path}")


if __name__ == "__main__":
  main()
