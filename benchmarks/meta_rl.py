"""Meta-RL benchmarks: MAML-RL on 2D navigation (Finn et al. 2017) and RL² on bandits (Duan et al. 2016).

Usage::

  python -m benchmarks.meta_rl nav --iterations 300          # 2D navigation (see README)
  python -m benchmarks.meta_rl nav --iterations 5 --eval-tasks 20 --hidden 32 --out /tmp/nav.json
  python -m benchmarks.meta_rl bandit --arms 5 --pulls 10    # RL² against the classical strategies
  python -m benchmarks.meta_rl table                         # README's tables from the JSON files

``nav``: return after 0, 1 and 3 adaptation steps (Finn et al., Sec. 5.3, Fig. 4).

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

``bandit``: RL² (``jmeta.rl.rl2``: a GRU trained with PPO across trials of
``--pulls`` pulls of ``--arms`` Bernoulli arms, means U[0, 1]) for
``--iterations`` PPO iterations of ``--meta-batch`` trials, then the total
reward per trial on ``--eval-tasks`` held-out bandits, against random, UCB1,
Thompson sampling and the finite-horizon Gittins index played on the same
arms (mean ± 95% CI; Duan et al., Table 1). Writes
``results/meta_rl_bandit_k{arms}_n{pulls}.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jmeta
from jmeta import rl

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
EVAL_STEPS = (0, 1, 3)


def train(learner, env, params, key, args, name, policy=None):
  """Meta-trains ``learner`` with ``jmeta.fit``; returns params and CPU/wall seconds."""
  if args.outer == "promp" and policy is not None:  # MAML's outer step as ProMP's clipped objective
    it = rl.promp_iteration(env, policy.apply, optax.adam(args.meta_lr), meta_batch=args.meta_batch,
                            clip_norm=args.clip_norm, steps=1, trajectories=args.trajectories,
                            inner_lr=args.inner_lr, normalize_advantages=args.normalize_advantages)
  else:
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


def nav(argv) -> None:
  """The 2D-navigation comparison."""
  ap = argparse.ArgumentParser(prog="meta_rl nav", description=__doc__.split("\n")[0])
  ap.add_argument("--iterations", type=int, default=500)
  ap.add_argument("--meta-batch", type=int, default=20)
  ap.add_argument("--trajectories", type=int, default=20)
  ap.add_argument("--hidden", type=int, default=100)
  ap.add_argument("--inner-lr", type=float, default=0.1)
  ap.add_argument("--meta-lr", type=float, default=3e-3)
  ap.add_argument("--clip-norm", type=float, default=None)
  ap.add_argument("--outer", choices=("dice", "promp"), default="dice",
                  help="MAML's outer update: an Adam step on the DiCE meta-gradient, or ProMP's"
                  " clipped objective (5 Adam steps per batch)")
  ap.add_argument("--normalize-advantages", action="store_true",
                  help="standardise each rollout batch's advantages (rllab's center_adv)")
  ap.add_argument("--eval-tasks", type=int, default=100)
  ap.add_argument("--log-every", type=int, default=None)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=str(RESULTS / "meta_rl_nav.json"))
  args = ap.parse_args(argv)
  args.log_every = args.log_every or max(1, min(50, args.iterations))

  env, oracle_env = rl.point_nav(), rl.point_nav(observe_goal=True)
  policy = rl.GaussianMLP(2, hidden=(args.hidden, args.hidden))
  k_init, k_maml, k_pre, k_oracle, k_test = jax.random.split(jax.random.key(args.seed), 5)
  params = policy.init(k_init, jnp.zeros((2,)))
  oracle_params = policy.init(k_init, jnp.zeros((4,)))
  common = dict(trajectories=args.trajectories, inner_lr=args.inner_lr,
                normalize_advantages=args.normalize_advantages)

  speed = env_steps_per_second(env, policy, params, args)
  print(f"compiled rollouts: {speed['steps_per_s']:.3g} env steps/s"
        f" ({speed['steps_per_rollout_batch']} steps per batch, compile {speed['compile_s']:.1f} s)")

  trained, timing = {"random": params}, {}
  trained["maml"], timing["maml"] = train(rl.maml_rl(env, policy.apply, steps=1, **common), env,
                                          params, k_maml, args, "maml", policy=policy)
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


BANDIT_BASELINES = ("random", "ucb1", "thompson", "gittins")


def bandit(argv) -> None:
  """RL² on Bernoulli bandits against the classical strategies, on the same arms."""
  ap = argparse.ArgumentParser(prog="meta_rl bandit", description=bandit.__doc__)
  ap.add_argument("--arms", type=int, default=5)
  ap.add_argument("--pulls", type=int, default=10)
  ap.add_argument("--iterations", type=int, default=1000)
  ap.add_argument("--meta-batch", type=int, default=64)
  ap.add_argument("--hidden", type=int, default=128)
  ap.add_argument("--lr", type=float, default=1e-3)
  ap.add_argument("--entropy-coef", type=float, default=0.01)
  ap.add_argument("--gamma", type=float, default=0.99)
  ap.add_argument("--gae-lambda", type=float, default=0.95)
  ap.add_argument("--epochs", type=int, default=4)
  ap.add_argument("--minibatches", type=int, default=4)
  ap.add_argument("--time-budget", type=float, default=1500.0,
                  help="stop training after this many seconds (wall)")
  ap.add_argument("--eval-tasks", type=int, default=1000)
  ap.add_argument("--log-every", type=int, default=50)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=None)
  args = ap.parse_args(argv)
  out = pathlib.Path(args.out or RESULTS / f"meta_rl_bandit_k{args.arms}_n{args.pulls}.json")

  env = rl.bernoulli_bandit(args.arms, args.pulls)
  gru = rl.GRUPolicy(actions=args.arms, hidden=args.hidden)
  k_init, k_train, k_test, k_base = jax.random.split(jax.random.key(args.seed), 4)
  params = gru.init(k_init, gru.initial_carry(), jnp.ones((1,)), jnp.array(0), 0.0, True)
  agent = rl.rl2(env, gru.apply, gru.initial_carry(), optax.adam(args.lr),
                 entropy_coef=args.entropy_coef, gamma=args.gamma, gae_lambda=args.gae_lambda,
                 epochs=args.epochs, minibatches=args.minibatches)
  state = agent.step.init(k_init, params)

  # Steady-state speed of the compiled trials of one batch (compile timed apart).
  tasks = env.sample_batch(jax.random.key(1), args.meta_batch)
  collect = jax.jit(agent.collect)
  t0 = time.perf_counter()
  jax.block_until_ready(collect(params, tasks))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(5):
    jax.block_until_ready(collect(params, env.sample_batch(jax.random.key(i + 2), args.meta_batch)))
  steps = args.meta_batch * args.pulls
  speed = {"steps_per_batch": steps, "compile_s": compile_s,
           "steps_per_s": steps * 5 / (time.perf_counter() - t0)}
  print(f"compiled trials: {speed['steps_per_s']:.3g} env steps/s", flush=True)

  cpu0, wall0 = time.process_time(), time.perf_counter()
  curve = []
  for state, rec in jmeta.fit(agent.step, state, env.sample_batch, key=k_train,
                               iterations=args.iterations, meta_batch=args.meta_batch,
                               log_every=args.log_every):
    wall = time.perf_counter() - wall0
    curve.append({"step": rec["step"], "return": rec["return"], "entropy": rec["entropy"],
                  "wall_s": wall})
    print(f"  rl2 k={args.arms} n={args.pulls}: step {rec['step']:5d}  return"
          f" {rec['return']:7.3f}  entropy {rec['entropy']:.3f}  kl {rec['approx_kl']:.4f}"
          f"  {wall:6.0f} s", flush=True)
    if wall > args.time_budget:
      break
  jax.block_until_ready(state)
  training = {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
              "iterations": int(state.step), "skipped": int(state.skipped)}

  # The same held-out arms (and trial keys) for RL² and every baseline.
  test = env.sample_batch(k_test, args.eval_tasks)
  totals = {"rl2": np.asarray(jax.jit(jax.vmap(
      lambda t: agent.learner.task_loss(state.meta_params, t)[1]["return"]))(test))}
  strategies = {"random": rl.random_arms, "ucb1": rl.ucb1, "thompson": rl.thompson,
                "gittins": rl.gittins(rl.gittins_table(args.pulls))}
  totals.update(rl.bandit_baselines(test.params, k_base, args.pulls, strategies))
  table = {name: jmeta.mean_ci95(v) for name, v in totals.items()}
  ratio = table["rl2"][0] / table["thompson"][0]
  print(f"\ntotal reward per trial, k={args.arms} arms, n={args.pulls} pulls,"
        f" {args.eval_tasks} held-out bandits (mean ± 95% CI):")
  for name, (m, h) in table.items():
    print(f"  {name:10s} {m:8.3f} ± {h:.3f}")
  print(f"  RL² / Thompson = {ratio:.3f}")
  result = {"config": vars(args), "env": env.describe(), "total_reward": table,
            "rl2_over_thompson": ratio, "training": training, "trial_speed": speed,
            "curve": curve, "backend": jax.default_backend(), "jax": jax.__version__}
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2))
  print(f"wrote {out}")


def table(argv) -> None:
  """Prints README's markdown tables from the JSON files of ``nav`` and ``bandit``."""
  ap = argparse.ArgumentParser(prog="meta_rl table", description=table.__doc__)
  ap.add_argument("--dir", default=str(RESULTS))
  args = ap.parse_args(argv)
  folder = pathlib.Path(args.dir)
  nav_path = folder / "meta_rl_nav.json"
  if nav_path.exists():
    r = json.loads(nav_path.read_text())
    names = {"random": "random init", "maml": "MAML-RL (DiCE)",
             "pretrained": "pretrained on all goals", "oracle": "goal-aware oracle"}
    print("| policy | k=0 | k=1 | k=3 | train CPU s |\n| --- | --- | --- | --- | --- |")
    for name, row in r["return"].items():
      cells = " | ".join(f"{row[s][0]:.1f} ± {row[s][1]:.1f}" if s in row else ""
                         for s in ("0", "1", "3"))
      cpu = r["training"].get(name, {}).get("cpu_s")
      print(f"| {names.get(name, name)} | {cells} | {'' if cpu is None else f'{cpu:.0f}'} |")
    print()
  rows = sorted(folder.glob("meta_rl_bandit_k*_n*.json"),
                key=lambda p: (json.loads(p.read_text())["config"]["pulls"],
                               json.loads(p.read_text())["config"]["arms"]))
  if rows:
    print("| k, n | random | UCB1 | Thompson | Gittins | RL² | RL² / Thompson | train CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in rows:
      r = json.loads(p.read_text())
      t = r["total_reward"]
      cells = " | ".join(f"{t[n][0]:.2f} ± {t[n][1]:.2f}" for n in (*BANDIT_BASELINES, "rl2"))
      print(f"| {r['config']['arms']}, {r['config']['pulls']} | {cells} |"
            f" {r['rl2_over_thompson']:.3f} | {r['training']['cpu_s']:.0f} |")


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else list(argv)
  commands = {"nav": nav, "bandit": bandit, "table": table}
  if not argv or argv[0] not in commands:
    sys.exit(f"usage: python -m benchmarks.meta_rl {{{'|'.join(commands)}}} [options]\n\n{__doc__}")
  commands[argv[0]](argv[1:])


if __name__ == "__main__":
  main()
