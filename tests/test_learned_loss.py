"""Learned losses (ML^3): meta-gradients, the inner loop uses the learned loss, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms import learned_loss, loss_network
from testing_utils import first_task, linear_apply, linear_batch, linear_params


def _numpy_net(loss_params, feats):
  h = feats.reshape(-1, feats.shape[-1])
  layers = [jax.tree.map(np.asarray, l) for l in loss_params["layers"]]
  for l in layers[:-1]:
    h = np.logaddexp(0.0, h @ l["w"] + l["b"])
  return float(np.mean(h @ layers[-1]["w"] + layers[-1]["b"]))


def test_loss_matches_reference_for_regression_and_labels():
  net = loss_network(hidden=(5,))
  lp = net.init(jax.random.key(0))
  task = first_task(linear_batch(dim=3))
  p = linear_params(dim=3)
  pred, y = np.asarray(linear_apply(p, task.support_x)), np.asarray(task.support_y)
  want = _numpy_net(lp, np.stack([pred, y, pred - y], -1))
  np.testing.assert_allclose(net.loss_fn(lp, linear_apply)(p, task.support_x, task.support_y), want, rtol=1e-12)
  # integer labels with logits: (logit, log_softmax, one_hot) per class
  logits_fn = lambda q, x: x @ q
  q = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float64).reshape(3, 4)
  labels = jnp.asarray([0, 3, 1, 2, 2, 1])
  logits = np.asarray(task.support_x @ q)
  logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  want = _numpy_net(lp, np.stack([logits, logp, np.eye(4)[np.asarray(labels)]], -1))
  np.testing.assert_allclose(net.loss_fn(lp, logits_fn)(q, task.support_x, labels), want, rtol=1e-12)


def test_inner_steps_use_the_learned_loss():
  net = loss_network(hidden=(5,))
  mse = jmeta.mse_loss(linear_apply)
  learner = learned_loss(linear_apply, mse, optax.sgd(0.1), steps=1, network=net)
  mp = learner.init(jax.random.key(0), linear_params())
  task = first_task(linear_batch())
  x, y = task.support_x, task.support_y
  adapted, (_, metrics) = jax.jit(lambda m: (learner.adapt(m, x, y), learner.task_loss(m, task)))(mp)
  learned = net.loss_fn(mp["loss"], linear_apply)
  want = jax.tree.map(lambda a, g: a - 0.1 * g, mp["params"], jax.grad(learned)(mp["params"], x, y))
  plain = jax.tree.map(lambda a, g: a - 0.1 * g, mp["params"], jax.grad(mse)(mp["params"], x, y))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), adapted.params, want)
  assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
             zip(jax.tree.leaves(adapted.params), jax.tree.leaves(plain))) > 1e-3
  # metrics: the true loss on support and query, the learned loss apart
  np.testing.assert_allclose(metrics["support_loss"], mse(want, x, y), rtol=1e-12)
  np.testing.assert_allclose(metrics["query_loss"], mse(want, task.query_x, task.query_y), rtol=1e-12)
  np.testing.assert_allclose(metrics["learned_support_loss_before"], learned(mp["params"], x, y), rtol=1e-12)


def test_meta_gradient_wrt_loss_network_passes_check_grads():
  net = loss_network(hidden=(4,), inputs=2)
  learner = learned_loss(linear_apply, jmeta.mse_loss(linear_apply), optax.sgd(0.2), steps=2, network=net)
  task = first_task(linear_batch(dim=2))
  params = linear_params(dim=2)
  lp = net.init(jax.random.key(1))
  f = jax.jit(lambda l, p: learner.task_loss({"params": p, "loss": l}, task)[0])
  check_grads(f, (lp, params), order=1, modes=("rev",), eps=1e-6, rtol=1e-5, atol=1e-8)


def test_fixed_init_gets_no_meta_gradient():
  learner = learned_loss(linear_apply, jmeta.mse_loss(linear_apply), steps=1, learn_init=False,
                         network=loss_network(hidden=(4,)))
  mp = learner.init(jax.random.key(0), linear_params())
  g, _ = jax.jit(learner.task_grad)(mp, first_task(linear_batch()))
  assert all(float(jnp.max(jnp.abs(v))) == 0.0 for v in jax.tree.leaves(g["params"]))
  assert any(float(jnp.max(jnp.abs(v))) > 0.0 for v in jax.tree.leaves(g["loss"]))


def test_bad_configuration_raises_clear_errors():
  mse = jmeta.mse_loss(linear_apply)
  with pytest.raises(ValueError, match="hidden must be"):
    loss_network(hidden=(0,))
  with pytest.raises(ValueError, match="inputs must be a non-negative int"):
    loss_network(inputs=-1)
  with pytest.raises(TypeError, match="network must be a LearnedLoss"):
    learned_loss(linear_apply, mse, network=optax.sgd(0.1))
  with pytest.raises(TypeError, match="inner_opt must be an optax"):
    learned_loss(linear_apply, mse, 0.1)
  with pytest.raises(ValueError, match="steps must be a non-negative int"):
    learned_loss(linear_apply, mse, steps=-2)
  task = first_task(linear_batch())
  lp3 = loss_network(inputs=3).init(jax.random.key(0))
  with pytest.raises(ValueError, match="take 6 features but this loss_network has 3"):
    loss_network().loss_fn(lp3, linear_apply)
  with pytest.raises(ValueError, match=r"loss_network\(inputs=2\) got inputs of width 3"):
    loss_network(inputs=2).loss_fn(loss_network(inputs=2).init(jax.random.key(0)), linear_apply)(
        linear_params(), task.support_x, task.support_y)
