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

from typing import Literal, Sequence, Tuple, Union

import jax
from jax import lax
import jax.numpy as jnp

ConvImpl = Literal["auto", "matmul", "xla"]
Padding = Union[str, Sequence[Tuple[int, int]]]

__all__ = [
    "batch_stat_norm",
    "conv2d",
    "max_pool_2x2",
    "resolve_conv_impl",
]


def resolve_conv_impl(impl: str) -> str:
  """Returns ``"matmul"`` or ``"xla"`` for an ``impl`` that may be ``"auto"``.

  ``"auto"`` means ``"matmul"`` when the default backend is the CPU and
  ``"xla"`` (``lax.conv_general_dilated``) otherwise.
  """
  if impl == "auto":
    return "matmul" if jax.default_backend() == "cpu" else "xla"
  if impl not in ("matmul", "xla"):
    raise ValueError(f"conv impl must be 'auto', 'matmul' or 'xla', got {impl!r}")
  return impl


def _explicit_padding(padding: Padding, kernel_hw: Tuple[int, int]):
  if isinstance(padding, str):
    if padding.upper() == "SAME":
      return tuple(((k - 1) // 2, k // 2) for k in kernel_hw)
    if padding.upper() == "VALID":
      return ((0, 0), (0, 0))
    raise ValueError(f"padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
  return tuple(tuple(int(p) for p in pair) for pair in padding)


def _conv2d_matmul(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  kh, kw, cin, cout = kernel.shape
  (pt, pb), (pl, pr) = padding
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  ho = xp.shape[1] - kh + 1
  wo = xp.shape[2] - kw + 1
  # Patch (i, j, c) sits at channel i * kw * cin + j * cin + c, which is the
  # row-major order of kernel.reshape(kh * kw * cin, cout).
  cols = [xp[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)]
  patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
  wmat = kernel.reshape(kh * kw * cin, cout)
  return lax.dot_general(patches, wmat, (((3,), (0,)), ((), ())))


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
      ``(kh * kw * in_channels, out_channels)`` kernel matrix; ``"xla"`` calls
      ``lax.conv_general_dilated``; ``"auto"`` is ``"matmul"`` on CPU and
      ``"xla"`` elsewhere.

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
  if resolve_conv_impl(impl) == "matmul":
    return _conv2d_matmul(x, kernel, pads)
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=pads,
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 ('VALID', floor mode), by reshape + max.

  Equals ``flax.linen.max_pool(x, (2, 2), strides=(2, 2))`` (and PyTorch's
  ``MaxPool2d(2)``): an odd trailing row or column is dropped. Its gradient is
  a mask product, not a ``select_and_scatter``; on ties (which a continuous
  input almost never has, and which after a ReLU sit where the ReLU's own
  gradient is zero) the gradient is shared equally among the maxima.

  Args:
    x: inputs, shape ``(batch, height, width, channels)``.

  Returns:
    Shape ``(batch, height // 2, width // 2, channels)``.
  """
  n, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  if (h2 * 2, w2 * 2) != (h, w):
    x = x[:, :h2 * 2, :w2 * 2, :]
  return jnp.max(x.reshape(n, h2, 2, w2, 2, c), axis=(2, 4))


def batch_stat_norm(
    x: jax.Array,
    scale: jax.Array | None = None,
    offset: jax.Array | None = None,
    *,
    eps: float = 1e-5,
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

  Returns:
    An array shaped like ``x``.
  """
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  xc = x - mean
  var = jnp.mean(xc * xc, axis=axes, keepdims=True)
  mul = lax.rsqrt(var + jnp.asarray(eps, x.dtype))
  bshape = (1,) * (x.ndim - 1) + (x.shape[-1],)
  if scale is not None:
    mul = mul * scale.reshape(bshape)
  y = xc * mul
  if offset is not None:
    y = y + offset.reshape(bshape)
  return y
