"""Tests of the fast conv ops and the 4-block ConvNet (jmeta/models/_conv*.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import jaxlib
import numpy as np
import pytest

from jmeta import models as _ops  # the public conv ops and the XLA workaround
from jmeta.models import ConvNet
import testing_utils

jax.config.update("jax_enable_x64", True)

F64 = dict(rtol=1e-10, atol=1e-10)


def _ref_conv(x, w, padding="SAME"):
  return lax.conv_general_dilated(x, w, (1, 1), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _randn(key, shape, dtype=jnp.float64):
  return jax.random.normal(key, shape, dtype)


IMPLS = ("matmul", "matmul_vjp", "xla", "xla_vjp")
DERIVED = ("matmul", "matmul_vjp", "xla_vjp")  # the implementations with derivatives of their own


@pytest.mark.parametrize("kernel_hw,padding,cin", [
    ((3, 3), "SAME", 3), ((3, 3), "VALID", 2), ((2, 2), ((2, 0), (1, 1)), 1)])
def test_conv_forward_matches_xla(kernel_hw, padding, cin):
  kx, kw = jax.random.split(jax.random.PRNGKey(0))
  x = _randn(kx, (2, 7, 6, cin))
  w = _randn(kw, (*kernel_hw, cin, 5))
  outs = jax.jit(lambda x, w: [_ops.conv2d(x, w, padding=padding, impl=i)
                               for i in IMPLS] + [_ref_conv(x, w, padding)])(x, w)
  for got in outs[:-1]:
    np.testing.assert_allclose(got, outs[-1], **F64)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 0), (1, 1))])
def test_conv_first_order_gradients_match_xla(padding):
  kx, kw, kc = jax.random.split(jax.random.PRNGKey(1), 3)
  x = _randn(kx, (3, 6, 6, 2))
  w = _randn(kw, (3, 3, 2, 4))
  cot = _randn(kc, _ref_conv(x, w, padding).shape)

  def f(impl):
    conv = (lambda x, w: _ref_conv(x, w, padding)) if impl == "ref" else (
        lambda x, w: _ops.conv2d(x, w, padding=padding, impl=impl))
    return lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * cot)

  grads = jax.jit(lambda x, w: {i: jax.grad(f(i), argnums=(0, 1))(x, w)
                                for i in DERIVED + ("ref",)})(x, w)
  for impl in DERIVED:
    for g, r in zip(grads[impl], grads["ref"]):
      np.testing.assert_allclose(g, r, **F64)


def _two_layer(conv, w1, w2, x):
  h = jax.nn.relu(conv(x, w1))
  h = _ops.max_pool_2x2(h)
  return jnp.mean(conv(h, w2), axis=(1, 2))


def test_conv_second_and_third_order_match_xla():
  ks = jax.random.split(jax.random.PRNGKey(2), 5)
  params = (0.5 * _randn(ks[0], (3, 3, 1, 4)), 0.5 * _randn(ks[1], (3, 3, 4, 3)))
  sx, qx = _randn(ks[2], (2, 6, 6, 1)), _randn(ks[3], (3, 6, 6, 1))
  sy, qy = _randn(ks[4], (2, 3)), _randn(ks[4], (3, 3))

  def maml(impl):  # one MAML inner step, then the query loss
    conv = _ref_conv if impl == "ref" else (
        lambda x, w: _ops.conv2d(x, w, impl=impl))

    def loss(p, x, y):
      return jnp.mean((_two_layer(conv, *p, x) - y) ** 2)

    def outer(p):
      g = jax.grad(loss)(p, sx, sy)
      adapted = jax.tree.map(lambda a, b: a - 0.3 * b, p, g)
      return loss(adapted, qx, qy)
    return outer

  def derivatives(impl):
    second = jax.grad(maml(impl))(params)
    # The gradient of a function of the meta-gradient: third order.
    third = jax.grad(lambda p: sum(
        jnp.sum(g ** 2) for g in jax.grad(maml(impl))(p)))(params)
    return second, third

  got = jax.jit(lambda: {i: derivatives(i) for i in DERIVED + ("ref",)})()
  for impl in DERIVED:
    for g, r in zip(got[impl][0], got["ref"][0]):
      np.testing.assert_allclose(g, r, **F64)
    for g, r in zip(got[impl][1], got["ref"][1]):
      np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("task_map", ["vmap", "scan"])
def test_xla_vjp_meta_gradients_under_task_maps(task_map):
  # Second-order MAML meta-gradients and a third-order derivative of 3 tasks,
  # each adapting its own weights, mapped by vmap or by lax.map (a scan: the
  # loop body where XLA:CPU handles convolutions differently): xla_vjp equals
  # autodiff of lax.conv, and the mapped result equals a Python loop over tasks.
  ks = jax.random.split(jax.random.PRNGKey(12), 5)
  params = (0.5 * _randn(ks[0], (3, 3, 1, 4)), 0.5 * _randn(ks[1], (3, 3, 4, 3)))
  sx, qx = _randn(ks[2], (3, 2, 6, 6, 1)), _randn(ks[3], (3, 3, 6, 6, 1))
  sy, qy = _randn(ks[4], (3, 2, 3)), _randn(ks[4], (3, 3, 3))

  def per_task(conv):
    def loss(p, x, y):
      return jnp.mean((_two_layer(conv, *p, x) - y) ** 2)

    def outer(p, t):
      g = jax.grad(loss)(p, t[0], t[1])
      return loss(jax.tree.map(lambda a, b: a - 0.3 * b, p, g), t[2], t[3])

    def derivs(p, t):
      second = jax.grad(outer)(p, t)
      third = jax.grad(lambda q: sum(jnp.sum(g ** 2) for g in jax.grad(outer)(q, t)))(p)
      return second, third
    return derivs

  tasks = (sx, sy, qx, qy)
  def mapped(conv):
    f = lambda t: per_task(conv)(params, t)
    return jax.vmap(f)(tasks) if task_map == "vmap" else lax.map(f, tasks)

  got, want = jax.jit(lambda: (
      mapped(lambda x, w: _ops.conv2d(x, w, impl="xla_vjp")), mapped(_ref_conv)))()
  # jitted: op by op, jaxlib 0.6.1's CPU backend rejects the negative pads of max_pool_2x2's gradient
  loop = jax.jit(lambda: [per_task(_ref_conv)(params, jax.tree.map(lambda a: a[i], tasks))
                          for i in range(3)])()
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-8)
  for i in range(3):
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(loop[i])):
      np.testing.assert_allclose(g[i], r, rtol=1e-8, atol=1e-8)


def test_xla_vjp_keeps_every_derivative_in_the_library_form():
  # Every convolution of a second-order MAML meta-gradient that jmeta emits is
  # NHWC/HWIO (b01f_01io->b01f), the one form XLA:CPU gives its convolution
  # library (its canonicalisation, which rewrites other forms, skips loop
  # bodies); autodiff of lax.conv emits others (its weight gradient swaps the
  # dimensions). Checked on the program as lowered, before XLA's own passes.
  x = jnp.ones((2, 16, 16, 1), jnp.float32)
  y = jnp.array([0, 1])

  def conv_forms(impl):
    net = ConvNet(ways=3, hidden=4, conv_impl=impl)
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)

    def loss(p, x):
      return jnp.mean(jax.nn.log_softmax(net.apply(p, x)) * jax.nn.one_hot(y, 3))

    def outer(p):
      g = jax.grad(loss)(p, x)
      return loss(jax.tree.map(lambda a, b: a - 0.1 * b, p, g), x)
    text = jax.jit(jax.grad(outer)).lower(params).as_text(dialect="hlo")
    assert "convolution(" in text
    return re.findall(r"dim_labels=(\S+?)[,\s}]", text)

  forms = conv_forms("xla_vjp")
  assert len(forms) >= 3 * 4 and set(forms) == {"b01f_01io->b01f"}, forms
  assert set(conv_forms("xla")) != {"b01f_01io->b01f"}


def test_matmul_impl_supports_forward_mode():
  # Forward-over-reverse Hessian-vector products need jvp: "matmul" (plain
  # autodiff) has it; "matmul_vjp" (a custom_vjp) is reverse-mode only.
  ks = jax.random.split(jax.random.PRNGKey(3), 3)
  params = (0.5 * _randn(ks[0], (3, 3, 1, 2)), 0.5 * _randn(ks[1], (3, 3, 2, 2)))
  sx = _randn(ks[2], (2, 6, 6, 1))

  def hvp(conv):
    inner = lambda p: jnp.sum(_two_layer(conv, *p, sx) ** 2)
    return jax.jvp(jax.grad(inner), (params,), (params,))[1]

  got, want = jax.jit(lambda: (
      hvp(lambda x, w: _ops.conv2d(x, w, impl="matmul")), hvp(_ref_conv)))()
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, **F64)


@pytest.mark.parametrize("impl", ["matmul", "matmul_vjp"])
def test_second_order_gradient_has_no_scatter(impl):
  x = jnp.ones((2, 16, 16, 1), jnp.float32)
  net = ConvNet(ways=3, hidden=4, conv_impl=impl)
  params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)  # lower only
  y = jnp.array([0, 1])

  def loss(p, x):  # one-hot, not indexing: a gather's transpose is a scatter
    return jnp.mean(jax.nn.log_softmax(net.apply(p, x)) * jax.nn.one_hot(y, 3))

  def outer(p):
    g = jax.grad(loss)(p, x)
    return loss(jax.tree.map(lambda a, b: a - 0.1 * b, p, g), x)

  hlo = jax.jit(jax.grad(outer)).lower(params).as_text()
  assert "scatter" not in hlo
  assert "convolution" not in hlo


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 5, 2), (3, 3, 3, 1)])
def test_max_pool_matches_flax(shape):
  x = _randn(jax.random.PRNGKey(3), shape)
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  cot = _randn(jax.random.PRNGKey(4), jax.eval_shape(ref, x).shape)
  vg = lambda f: jax.value_and_grad(lambda x: jnp.sum(f(x) * cot))(x)
  (v, g), (rv, r) = jax.jit(lambda: (vg(_ops.max_pool_2x2), vg(ref)))()
  np.testing.assert_allclose(_ops.max_pool_2x2(x), ref(x), **F64)
  np.testing.assert_allclose(g, r, **F64)


def test_batch_stat_norm_normalises():
  x = 3.0 + 2.0 * _randn(jax.random.PRNGKey(5), (4, 5, 5, 6))
  scale, offset = jnp.arange(1.0, 7.0), jnp.arange(6.0)

  def stats(x):
    y = _ops.batch_stat_norm(x, eps=0.0)
    z = _ops.batch_stat_norm(x, scale, offset, eps=0.0)
    axes = (0, 1, 2)
    return (jnp.mean(y, axes), jnp.var(y, axes), jnp.mean(z, axes),
            jnp.std(z, axes))

  y_mean, y_var, z_mean, z_std = jax.jit(stats)(x)
  np.testing.assert_allclose(y_mean, 0.0, atol=1e-12)
  np.testing.assert_allclose(y_var, 1.0, rtol=1e-10)
  np.testing.assert_allclose(z_mean, offset, atol=1e-10)
  np.testing.assert_allclose(z_std, scale, rtol=1e-10)


def test_batch_stat_norm_variance_modes_agree():
  x = 0.5 + _randn(jax.random.PRNGKey(9), (3, 4, 4, 5))
  fast = jax.jit(lambda x: _ops.batch_stat_norm(x, fast_variance=True))(x)
  slow = jax.jit(lambda x: _ops.batch_stat_norm(x, fast_variance=False))(x)
  np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)


def test_module_norm_is_transductive_and_affine():
  x = 3.0 + 2.0 * _randn(jax.random.PRNGKey(6), (6, 4, 4, 2))
  net = ConvNet(ways=2, hidden=3, blocks=1)
  params = jax.jit(net.init)(jax.random.PRNGKey(0), x)
  norm = params["params"]["body"]["norm_0"]
  assert set(norm) == {"scale", "bias"}
  assert "batch_stats" not in params  # no running averages
  assert "bias" not in params["params"]["body"]["conv_0"]  # norm cancels it
  with_bias = jax.eval_shape(ConvNet(ways=2, blocks=1, conv_bias=True).init,
                             jax.random.PRNGKey(0), x)
  assert "bias" in with_bias["params"]["body"]["conv_0"]
  no_norm = jax.eval_shape(ConvNet(ways=2, blocks=1, norm="none").init,
                           jax.random.PRNGKey(0), x)
  assert "bias" in no_norm["params"]["body"]["conv_0"]
  with pytest.raises(ValueError):
    ConvNet(ways=2, norm="running").init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_module_impls_agree(norm):
  x = _randn(jax.random.PRNGKey(7), (4, 8, 8, 1))
  y = jax.nn.one_hot(jnp.array([0, 1, 2, 1]), 3)
  impls = ("matmul", "matmul_vjp", "xla", "xla_vjp", "auto")
  nets = {impl: ConvNet(ways=3, hidden=4, blocks=2, norm=norm, conv_impl=impl,
                        conv_bias=True) for impl in impls}
  params = jax.jit(nets["xla"].init)(jax.random.PRNGKey(1), x)
  params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
  assert ("norm_0" in params["params"]["body"]) == (norm == "batch")

  def loss(net):
    return lambda p: jnp.mean(jax.nn.log_softmax(net.apply(p, x)) * y)

  outs = jax.jit(lambda p: {i: (nets[i].apply(p, x), jax.grad(loss(nets[i]))(p))
                            for i in impls})(params)
  assert outs["xla"][0].shape == (4, 3)
  for impl in ("matmul", "matmul_vjp", "xla_vjp", "auto"):
    np.testing.assert_allclose(outs[impl][0], outs["xla"][0], **F64)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **F64),
                 outs[impl][1], outs["xla"][1])


def test_resolve_conv_impl():
  want = "xla_vjp" if jax.default_backend() == "cpu" else "xla"
  assert _ops.resolve_conv_impl("auto") == want
  assert _ops.resolve_conv_impl("xla") == "xla"
  with pytest.raises(ValueError):
    _ops.resolve_conv_impl("winograd")


def test_vmap_over_per_task_weights_equals_loop():
  ks = jax.random.split(jax.random.PRNGKey(8), 2)
  net = ConvNet(ways=2, hidden=3, blocks=1, conv_impl="matmul")
  xs = _randn(ks[0], (3, 2, 6, 6, 1))
  base = jax.jit(net.init)(ks[1], xs[0])
  # Per-task weights, as after a per-task inner step.
  params = jax.tree.map(
      lambda p: p[None] * jnp.arange(1.0, 4.0).reshape((3,) + (1,) * p.ndim),
      base)

  def loss(p, x):
    return jnp.sum(net.apply(p, x) ** 2)

  out, grads = jax.jit(jax.vmap(jax.value_and_grad(loss)))(params, xs)
  one = jax.jit(jax.value_and_grad(loss))
  for t in range(3):
    p_t = jax.tree.map(lambda p: p[t], params)
    o_t, g_t = one(p_t, xs[t])
    np.testing.assert_allclose(out[t], o_t, **F64)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[t], b, **F64),
                 grads, g_t)
  hlo = jax.jit(jax.vmap(jax.grad(loss))).lower(params, xs).as_text()
  assert "convolution" not in hlo


def test_features_and_head_split():
  x = jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32)
  net = ConvNet(ways=5)
  params = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
  assert set(params["params"]) == {"body", "head"}
  assert jax.eval_shape(net.apply, params, x).shape == (3, 5)
  feats = jax.eval_shape(
      lambda p, x: net.apply(p, x, method=net.features), params, x)
  assert feats.shape == (3, 64)
  x3 = jax.ShapeDtypeStruct((3, 28, 28), jnp.float32)
  assert jax.eval_shape(net.apply, params, x3).shape == (3, 5)


def test_float64_conv_norm_gradient_jit_equals_op_by_op():
  # jmeta's own body (max-pool by strided slices, ReLU after it) is compiled
  # right on every jaxlib tried, with or without XLA_F64_WORKAROUND.
  from jmeta.models import ConvBody
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 28, 28, 1), jnp.float64)
  net = ConvBody(hidden=64, blocks=1, conv_impl="xla")
  params = jax.tree.map(lambda a: a.astype(jnp.float64),
                        net.init(jax.random.PRNGKey(0), x))
  w = _randn(jax.random.PRNGKey(3), net.apply(params, x).shape)
  f = lambda p: jnp.sum(w * net.apply(p, x))
  with jax.disable_jit():
    eager = jax.grad(f)(params)
  jitted = jax.jit(jax.grad(f))(params)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * float(jnp.abs(a).max()))


def test_float64_xla_miscompile_is_worked_around_where_needed():
  # Under the suite's XLA_FLAGS (conftest adds the workaround where
  # _ops.xla_f64_workaround_needed() says so) the miscompiled program is right.
  assert testing_utils.f64_conv_pool_gradient_error() < 1e-12


def test_float64_xla_workaround_gate_matches_the_installed_jaxlib():
  # Without the flag, the program is wrong exactly on the jaxlib releases the
  # gate names: if this fails, a jaxlib fixed (or broke) it; move the gate.
  code = "import jax; jax.config.update('jax_enable_x64', True); import testing_utils; " \
         "print(testing_utils.f64_conv_pool_gradient_error())"
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  err = float(out.stdout.split()[-1])
  assert err < 1e-12 or err > 1e-3, err
  assert (err > 1e-3) == _ops.xla_f64_workaround_needed(), (jaxlib.__version__, err)


def test_float64_conv_warns_without_xla_workaround(monkeypatch):
  # Through the public functions only: the jaxlib version decides whether the
  # workaround is needed. The warning fires once per process, so the silent
  # cases run first (they must not use up the warning) and the warning last.
  import warnings
  for version, flags in (("0.10.2", _ops.XLA_F64_WORKAROUND), ("0.10.1", "")):
    monkeypatch.setattr(jaxlib, "__version__", version)
    monkeypatch.setenv("XLA_FLAGS", flags)
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      _ops.check_float64_xla(jnp.float64)
      _ops.check_float64_xla(jnp.float32)
  monkeypatch.setattr(jaxlib, "__version__", "0.10.2")
  monkeypatch.setenv("XLA_FLAGS", "")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    _ops.check_float64_xla(jnp.float32)  # float32 is never affected
  with pytest.warns(RuntimeWarning, match="xla_disable_hlo_passes=algsimp"):
    _ops.check_float64_xla(jnp.float64)


def test_xla_flags_with_f64_workaround(monkeypatch):
  monkeypatch.setattr(jaxlib, "__version__", "0.10.2")  # an affected release
  assert _ops.xla_flags_with_f64_workaround("") == _ops.XLA_F64_WORKAROUND
  assert _ops.xla_flags_with_f64_workaround("--a=1") == "--a=1 " + _ops.XLA_F64_WORKAROUND
  assert _ops.xla_flags_with_f64_workaround(
      "--a=1 " + _ops.XLA_F64_WORKAROUND) == "--a=1 " + _ops.XLA_F64_WORKAROUND
  monkeypatch.setattr(jaxlib, "__version__", "0.10.1")  # not affected
  assert _ops.xla_flags_with_f64_workaround("--a=1") == "--a=1"
  for version, needed in (("0.10.1", False), ("0.10.2", True), ("0.12.0.1", True), ("0.6.1", False),
                          ("0.11.0rc1", True), ("1.0.0", True)):
    monkeypatch.undo()
    monkeypatch.setattr(jaxlib, "__version__", version)
    assert _ops.xla_f64_workaround_needed() == needed, version
