"""Convolution, pooling and normalisation ops that are fast on XLA:CPU.

XLA:CPU runs a convolution well at the top level of a program, but badly when
the convolution's weights carry a batch dimension (``jax.vmap`` over per-task
weights turns it into a grouped convolution) or when it sits inside a loop
(``lax.map``/``lax.scan``), and its weight-gradient convolution is slow in
both places. Meta-learning does exactly that: every task of a batch adapts its
own copy of the weights, and second-order MAML differentiates the backward
pass once more.

The ops here are written with slices, pads, concatenations, reductions and a
single matrix product, so that every derivative of theirs (first, second,
...) is built from the same cheap primitives: a slice transposes to a pad, a
concatenation to slices, a product to products. No derivative contains a
``scatter`` or a ``select_and_scatter``, and ``jax.vmap`` over the weights
turns the product into a batched ``dot_general`` instead of a grouped
convolution. On GPU and TPU the native convolution is usually the better
choice; :func:`conv2d` picks per backend with ``impl="auto"``.
"""

from __future__ import annotations

import functools
import itertools
import os
from typing import Literal, Sequence, Tuple, Union
import warnings

import jax
from jax import lax
import jax.numpy as jnp

ConvImpl = Literal["auto", "matmul", "matmul_vjp", "xla", "xla_vjp"]
Padding = Union[str, Sequence[Tuple[int, int]]]

__all__ = [
    "XLA_F64_WORKAROUND",
    "batch_stat_norm",
    "check_float64_xla",
    "conv2d",
    "max_pool_2x2",
    "resolve_conv_impl",
    "xla_f64_workaround_needed",
    "xla_flags_with_f64_workaround",
]


# XLA:CPU miscompiles some float64 programs made of a convolution, batch
# normalisation, ReLU and a max-pool taken as a max over a reshaped window
# (seen with 64 channels): the jit-compiled gradient differs from the op-by-op
# one by O(1), for ``lax.conv_general_dilated`` and the matmul path alike.
# Measured: jaxlib 0.6.1 to 0.10.1 are right; 0.10.2 to 0.12.0.1 (the newest
# tried) are wrong. Turning off the algebraic simplifier fixes it (jit then
# equals op-by-op to 1e-15). Float32 is not affected, and jmeta's own conv
# modules (max-pool by strided slices, ReLU after the pool) do not hit it on
# any of these. See README, "Known issues".
XLA_F64_WORKAROUND = "--xla_disable_hlo_passes=algsimp"
_F64_MISCOMPILE_SINCE = (0, 10, 2)  # first affected jaxlib; no fixed one known
_warned_f64 = []


def xla_f64_workaround_needed() -> bool:
  """Whether the installed jaxlib has the float64 miscompile (``>= 0.10.2``)."""
  import jaxlib
  release = []
  for part in jaxlib.__version__.split("."):
    digits = "".join(itertools.takewhile(str.isdigit, part))
    if not digits:
      break
    release.append(int(digits))
  return tuple(release) >= _F64_MISCOMPILE_SINCE


def xla_flags_with_f64_workaround(flags: str) -> str:
  """``flags`` (an ``XLA_FLAGS`` value) with the workaround added if this jaxlib needs it."""
  if not xla_f64_workaround_needed() or XLA_F64_WORKAROUND in flags.split():
    return flags
  return (flags + " " + XLA_F64_WORKAROUND).strip()


def check_float64_xla(dtype) -> None:
  """Warns once if float64 conv nets run on an affected XLA:CPU without the workaround.

  Called by jmeta's conv modules at trace time; silent on jaxlib releases
  without the miscompile (:func:`xla_f64_workaround_needed`). The workaround
  must be in ``XLA_FLAGS`` before JAX starts its backend, e.g.
  ``XLA_FLAGS=--xla_disable_hlo_passes=algsimp python train.py``.
  """
  if _warned_f64 or jnp.dtype(dtype) != jnp.float64:
    return
  if jax.default_backend() != "cpu":
    return
  if "algsimp" in os.environ.get("XLA_FLAGS", "") or not xla_f64_workaround_needed():
    return
  _warned_f64.append(True)
  warnings.warn(
      "float64 conv net on XLA:CPU: jaxlib >= 0.10.2 can miscompile the gradients of "
      "conv -> batch norm -> ReLU -> max-pool in float64 under jit. Set "
      f"XLA_FLAGS={XLA_F64_WORKAROUND} before importing jax (see jmeta's README, "
      "'Known issues'); float32 is not affected.", RuntimeWarning, stacklevel=3)


def resolve_conv_impl(impl: str) -> str:
  """Returns the implementation an ``impl`` that may be ``"auto"`` stands for.

  ``"auto"`` means ``"xla_vjp"`` when the default backend is the CPU and
  ``"xla"`` (``lax.conv_general_dilated``) otherwise.
  """
  if impl == "auto":
    return "xla_vjp" if jax.default_backend() == "cpu" else "xla"
  if impl not in _IMPLS:
    raise ValueError(f"conv impl must be 'auto' or one of {', '.join(map(repr, _IMPLS))}, "
                     f"got {impl!r}")
  return impl


_IMPLS = ("matmul", "matmul_vjp", "xla", "xla_vjp")


def _explicit_padding(padding: Padding, kernel_hw: Tuple[int, int]):
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      return tuple(((k - 1) // 2, k // 2) for k in kernel_hw)
    if padding.upper() == "VALID":
      return ((0, 0), (0, 0))
    raise ValueError(f"padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
  return tuple(tuple(int(p) for p in pair) for pair in padding)


def _patches(x: jax.Array, kh: int, kw: int, padding) -> jax.Array:
  """``(N, Ho, Wo, kh * kw * C)``: the shifted slices of the padded input."""
  (pt, pb), (pl, pr) = padding
  zero = jnp.zeros((), x.dtype)
  # lax.pad accepts negative (cropping) pads, which the transposes need.
  xp = lax.pad(x, zero, ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
  ho = xp.shape[1] - kh + 1
  wo = xp.shape[2] - kw + 1
  # Patch (i, j, c) sits at channel i * kw * C + j * C + c, which is the
  # row-major order of kernel.reshape(kh * kw * C, cout).
  cols = [xp[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def _conv_mm(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  kh, kw, cin, cout = kernel.shape
  wmat = kernel.reshape(kh * kw * cin, cout)
  return lax.dot_general(_patches(x, kh, kw, padding), wmat,
                         (((3,), (0,)), ((), ())))


def _wgrad_mm(x: jax.Array, g: jax.Array, padding, kernel_hw) -> jax.Array:
  """``d<g, conv(x, w)>/dw``: patches(x)^T g, shape ``(kh, kw, C, Cout)``."""
  kh, kw = kernel_hw
  p = _patches(x, kh, kw, padding)
  # g^T p rather than p^T g: XLA:CPU's dot wants the contraction minor in its
  # left operand, so this transposes the small g, not the 9x larger patches.
  dwt = lax.dot_general(g, p, (((0, 1, 2), (0, 1, 2)), ((), ())))
  return dwt.T.reshape(kh, kw, x.shape[-1], g.shape[-1])


def _conv_xla(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding=padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _wgrad_xla(x: jax.Array, g: jax.Array, padding, kernel_hw) -> jax.Array:
  """``_wgrad_mm`` as one NHWC/HWIO convolution.

  ``dw[i, j, c, o] = sum_{n, h, w} x_padded[n, h + i, w + j, c] g[n, h, w, o]``
  is a stride-1 convolution whose batch is ``x``'s channels, whose input
  channels are the images and whose kernel is ``g``: the output's spatial size
  is ``kernel_hw``. Writing it in the NHWC/HWIO form (two small transposes)
  rather than in the form autodiff gives (``lax.conv``'s transpose rule swaps
  the dimension numbers) keeps it on the library convolution that XLA:CPU
  uses only for that form.
  """
  del kernel_hw  # implied by the shapes
  xt, gt = _materialized(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)))
  return jnp.transpose(_materialized(_conv_xla(xt, gt, padding)), (1, 2, 0, 3))


def _materialized(*xs: jax.Array):
  """``xs`` computed as they are: XLA may not fold a transpose of theirs into a convolution.

  XLA's transpose folding would turn the transposed operands back into a
  convolution with permuted dimension numbers, the form this module avoids.
  """
  out = lax.optimization_barrier(xs)
  return out if len(xs) > 1 else out[0]


_CONV = {"matmul": _conv_mm, "xla": _conv_xla}
_WGRAD = {"matmul": _wgrad_mm, "xla": _wgrad_xla}


def _transposed_padding(padding, kernel_hw):
  return tuple((k - 1 - lo, k - 1 - hi)
               for (lo, hi), k in zip(padding, kernel_hw))


def _flip_kernel(kernel: jax.Array, form: str = "matmul") -> jax.Array:
  """``(kh, kw, C, Cout) -> (kh, kw, Cout, C)``, spatially flipped.

  For the "xla" form the flipped kernel is materialised, so that XLA does not
  fold the reversal and transpose back into the convolution.
  """
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  return _materialized(flipped) if form == "xla" else flipped


# The "_vjp" paths differentiate themselves in terms of themselves: the input
# gradient of a convolution is a convolution of the output gradient with the
# flipped kernel, and the weight gradient ``wgrad`` has a VJP made of ``conv``
# again. Every derivative order therefore stays made of these two functions,
# with ``form`` ("matmul": shifted slices and one product; "xla": NHWC/HWIO
# ``lax.conv`` calls) choosing how each is computed. For "matmul" this avoids
# the (M, Cout) x (Cout, kh*kw*C) product plus col2im that autodiff would
# build; for "xla" it keeps every derivative in the one convolution form that
# XLA:CPU hands to its convolution library (YNNPACK/oneDNN) -- autodiff's
# derivatives of ``lax.conv`` have swapped dimension numbers, which XLA:CPU
# rewrites to that form only outside loops (its ConvCanonicalization pass does
# not run on loop bodies), so inside ``lax.scan`` they became generated loop
# nests.


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_fast(x, kernel, padding, form):
  return _CONV[form](x, kernel, padding)


def _conv_fast_fwd(x, kernel, padding, form):
  # The primal through the custom_vjp function itself, not _CONV[form]: under a
  # higher-order derivative the forward pass is differentiated too, and must
  # use these rules rather than autodiff's.
  return _conv_fast(x, kernel, padding, form), (x, kernel)


def _conv_fast_bwd(padding, form, res, g):
  x, kernel = res
  hw = kernel.shape[:2]
  dx = _conv_fast(g, _flip_kernel(kernel, form), _transposed_padding(padding, hw), form)
  dw = _wgrad_fast(x, g, padding, hw, form)
  return dx, dw


_conv_fast.defvjp(_conv_fast_fwd, _conv_fast_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _wgrad_fast(x, g, padding, kernel_hw, form):
  return _WGRAD[form](x, g, padding, kernel_hw)


def _wgrad_fast_fwd(x, g, padding, kernel_hw, form):
  return _wgrad_fast(x, g, padding, kernel_hw, form), (x, g)


def _wgrad_fast_bwd(padding, kernel_hw, form, res, h):
  x, g = res
  # <h, wgrad(x, g)> = <h, dconv/dw> = <g, conv(x, h)>: bilinear in (x, g).
  dg = _conv_fast(x, h, padding, form)
  dx = _conv_fast(g, _flip_kernel(h, form), _transposed_padding(padding, kernel_hw), form)
  return dx, dg


_wgrad_fast.defvjp(_wgrad_fast_fwd, _wgrad_fast_bwd)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    *,
    padding: Padding = "SAME",
    impl: ConvImpl = "auto",
) -> jax.Array:
  """A stride-1 2-D convolution (cross-correlation, as in every DL library).

  Args:
    x: inputs, shape ``(batch, height, width, in_channels)`` (NHWC).
    kernel: weights, shape ``(kh, kw, in_channels, out_channels)`` (HWIO, the
      layout of ``flax.linen.Conv``).
    padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
    impl: ``"matmul"`` builds the ``kh * kw`` shifted slices of the padded
      input, concatenates them on the channel axis and multiplies by the
      ``(kh * kw * in_channels, out_channels)`` kernel matrix, and leaves
      differentiation (reverse and forward mode, any order) to JAX;
      ``"matmul_vjp"`` is the same forward pass with a ``custom_vjp`` whose
      input gradient is again a convolution (of the output gradient with the
      flipped kernel) and whose weight gradient has a VJP made of
      convolutions, so every derivative order is made of well-shaped
      products (reverse mode only: no ``jax.jvp``); ``"xla"`` calls
      ``lax.conv_general_dilated`` and leaves its derivatives to JAX;
      ``"xla_vjp"`` is ``lax.conv_general_dilated`` with the same
      hand-written VJPs, every derivative of every order an NHWC/HWIO
      ``lax.conv_general_dilated`` (reverse mode only), which XLA:CPU runs on
      its convolution library also inside ``lax.scan``; ``"auto"`` is
      ``"xla_vjp"`` on CPU and ``"xla"`` elsewhere.

  Returns:
    The outputs, shape ``(batch, out_height, out_width, out_channels)``.

  Examples:
    >>> x = jnp.ones((2, 8, 8, 3)); w = jnp.ones((3, 3, 3, 4))
    >>> conv2d(x, w, impl="matmul").shape
    (2, 8, 8, 4)
  """
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(f"expected NHWC inputs and an HWIO kernel, got shapes "
                     f"{x.shape} and {kernel.shape}")
  pads = _explicit_padding(padding, kernel.shape[:2])
  impl = resolve_conv_impl(impl)
  if impl == "matmul":
    return _conv_mm(x, kernel, pads)
  if impl == "matmul_vjp":
    return _conv_fast(x, kernel, pads, "matmul")
  if impl == "xla_vjp":
    return _conv_fast(x, kernel, pads, "xla")
  return _conv_xla(x, kernel, pads)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 ('VALID', floor mode), by strided slices.

  Equals ``flax.linen.max_pool(x, (2, 2), strides=(2, 2))`` (and PyTorch's
  ``MaxPool2d(2)``): an odd trailing row or column is dropped. It is the
  elementwise maximum of the four strided slices ``x[:, i::2, j::2]``, so its
  gradient is made of selects and pads (the transpose of a strided slice), not
  a ``select_and_scatter``, and is ~3x faster on XLA:CPU than the gradient of a
  ``max`` reduction over a reshaped window (measured: 32 ms vs 109 ms for
  320 x 28 x 28 x 64 floats). On ties (which a continuous input almost never
  has, and which after a ReLU sit where the ReLU's own gradient is zero) the
  gradient is split among the tied entries (``jnp.maximum``'s rule: halves at
  each pairwise tie), summing to one.

  Args:
    x: inputs, shape ``(batch, height, width, channels)``.

  Returns:
    Shape ``(batch, height // 2, width // 2, channels)``.
  """
  _, h, w, _ = x.shape
  h2, w2 = h // 2, w // 2
  x = x[:, :h2 * 2, :w2 * 2, :]
  # lax.slice, not x[:, i::2, j::2]: jax < 0.10 lowers a multi-axis strided
  # index to a gather, whose transpose is a scatter.
  part = lambda i, j: lax.slice(x, (0, i, j, 0), x.shape, (1, 2, 2, 1))
  top = jnp.maximum(part(0, 0), part(0, 1))
  bottom = jnp.maximum(part(1, 0), part(1, 1))
  return jnp.maximum(top, bottom)


def batch_stat_norm(
    x: jax.Array,
    scale: jax.Array | None = None,
    offset: jax.Array | None = None,
    *,
    eps: float = 1e-5,
    fast_variance: bool = True,
) -> jax.Array:
  """Normalises each channel with the statistics of this batch (transductive).

  ``y = (x - mean) / sqrt(var + eps) * scale + offset``, with the mean and the
  biased variance taken over every axis but the last. No running averages are
  kept: this is the batch normalisation of Finn et al.'s MAML (and of
  learn2learn's ``ConvBase``), which at test time also uses the statistics of
  the batch in hand.

  Args:
    x: inputs, shape ``(..., channels)``.
    scale: optional per-channel scale, shape ``(channels,)``.
    offset: optional per-channel offset, shape ``(channels,)``.
    eps: added to the variance.
    fast_variance: compute the variance as ``E[x^2] - E[x]^2`` in the same
      pass as the mean (flax's default); ``False`` uses the two-pass
      ``E[(x - E[x])^2]``, which is more accurate when ``|mean| >> std``.

  Returns:
    An array shaped like ``x``.
  """
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  if fast_variance:
    # One pass over x (one fused reduction), as flax's BatchNorm by default.
    var = jnp.maximum(
        jnp.mean(x * x, axis=axes, keepdims=True) - mean * mean, 0.0)
  else:
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
  xc = x - mean
  mul = lax.rsqrt(var + jnp.asarray(eps, x.dtype))
  bshape = (1,) * (x.ndim - 1) + (x.shape[-1],)
  if scale is not None:
    mul = mul * scale.reshape(bshape)
  y = xc * mul
  if offset is not None:
    y = y + offset.reshape(bshape)
  return y
