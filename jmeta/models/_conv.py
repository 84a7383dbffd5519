"""The 4-block convolutional network of few-shot learning, as flax modules.

``ConvNet`` is the backbone of MAML (Finn et al., 2017), ProtoNets (Snell et
al., 2017) and most of their successors: four blocks of [3x3 convolution with
64 filters, 'SAME' padding -> normalisation -> ReLU -> 2x2 max-pooling], then a
flattening and a linear head of width ``ways``. (The ReLU is applied after
the pooling, which gives the same numbers since ReLU is monotone, on a 4x
smaller array.) On 28x28 Omniglot images the
body yields 64 features (28 -> 14 -> 7 -> 3 -> 1); on 84x84 miniImageNet
images with 32 filters, 800.

The modules are plain flax linen modules used functionally::

  net = ConvNet(ways=5)
  params = net.init(key, x)          # {'params': {'body': ..., 'head': ...}}
  logits = net.apply(params, x)

so ``net.apply`` is the ``apply(params, x)`` that jmeta's learners consume.
The head lives in its own sub-tree (``params['params']['head']``), which is
what ANIL adapts, and ``ConvBody`` alone is the embedding of ProtoNets.

Normalisation (``norm``):
  * ``"batch"`` (default): transductive batch statistics with a learned
    per-channel scale and offset and no running averages, as in Finn et al.'s
    MAML and learn2learn's ``ConvBase``. Every call normalises with the
    statistics of the images it is given, at meta-training and meta-test time
    alike, so the support set and the query set of a task are each
    normalised with their own statistics.
  * ``"none"``: no normalisation (the convolution keeps its bias).
  More policies (e.g. MAML++'s per-step running statistics, which need state)
  can be added as further values of ``norm``.

Convolution (``conv_impl``): ``"matmul"`` is the fast path of
:func:`jmeta.models._ops.conv2d` (shifted slices + one matrix product, whose
first and second derivatives and whose ``vmap`` over per-task weights stay
matrix products, with no scatter anywhere); ``"matmul_vjp"`` is the same with
hand-written VJPs that keep every derivative a convolution-shaped product
(reverse mode only); ``"xla"`` is ``lax.conv_general_dilated``; ``"xla_vjp"``
is ``lax.conv_general_dilated`` with those hand-written VJPs, so that every
derivative of every order is an NHWC/HWIO convolution, the form XLA:CPU runs
on its convolution library also inside ``lax.scan`` (reverse mode only);
``"auto"`` (default) picks ``"xla_vjp"`` on CPU and ``"xla"`` on GPU/TPU. All give the
same parameters, outputs and gradients, so the switch never changes results
beyond rounding. 2x2 max-pooling is a reshape + max (its gradient is a mask,
not a ``select_and_scatter``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.models import _ops

Initializer = Callable[..., jax.Array]

__all__ = ["BatchStatNorm", "Conv", "ConvBody", "ConvNet"]

_NORMS = ("batch", "none")


class Conv(nn.Module):
  """A stride-1 2-D convolution with a switchable implementation.

  Parameter names and shapes are those of ``flax.linen.Conv``: ``kernel``
  ``(kh, kw, in_features, features)`` and ``bias`` ``(features,)``.

  Attributes:
    features: number of output channels.
    kernel_size: ``(kh, kw)``.
    padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
    use_bias: whether to add a per-channel bias.
    conv_impl: ``"auto"`` | ``"matmul"`` | ``"matmul_vjp"`` | ``"xla"`` |
      ``"xla_vjp"``, see
      :func:`jmeta.models._ops.conv2d`.
    kernel_init: initialiser of the kernel (Glorot/Xavier uniform, as in
      Finn et al. and learn2learn).
    bias_init: initialiser of the bias.
  """

  features: int
  kernel_size: Tuple[int, int] = (3, 3)
  padding: Any = "SAME"
  use_bias: bool = True
  conv_impl: str = "auto"
  kernel_init: Initializer = nn.initializers.xavier_uniform()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Convolves ``x`` of shape ``(batch, height, width, in_features)``."""
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features),
                        jnp.float32)
    kernel = kernel.astype(x.dtype)
    y = _ops.conv2d(x, kernel, padding=self.padding, impl=self.conv_impl)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
      y = y + bias.astype(y.dtype).reshape((1, 1, 1, self.features))
    return y


class BatchStatNorm(nn.Module):
  """Per-channel normalisation with the statistics of the current batch.

  Transductive batch normalisation without running averages (see
  :func:`jmeta.models._ops.batch_stat_norm`), with a learned ``scale``
  (initialised to 1) and ``bias`` (the offset, initialised to 0).

  Attributes:
    eps: added to the variance.
  """

  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalises ``x`` of shape ``(..., channels)`` over all other axes."""
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones_init(), (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
    return _ops.batch_stat_norm(x, scale.astype(x.dtype),
                                bias.astype(x.dtype), eps=self.eps)


class ConvBody(nn.Module):
  """The convolutional body: ``blocks`` x [conv, norm, ReLU, 2x2 max-pool].

  Attributes:
    hidden: filters of every convolution (64 for Omniglot, 32 for
      miniImageNet in Finn et al.).
    blocks: number of blocks.
    norm: ``"batch"`` (transductive batch statistics, default) or ``"none"``;
      see the module docstring.
    conv_impl: ``"auto"`` | ``"matmul"`` | ``"matmul_vjp"`` | ``"xla"`` |
      ``"xla_vjp"``.
    conv_bias: whether the convolutions have a bias; ``None`` (default) means
      only without normalisation, since a batch-statistics norm subtracts any
      per-channel bias again (its gradient is zero). ``True`` matches the
      parameter list of Finn et al.'s and learn2learn's models.
  """

  hidden: int = 64
  blocks: int = 4
  norm: str = "batch"
  conv_impl: str = "auto"
  conv_bias: Optional[bool] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps images ``(batch, height, width[, channels])`` to ``(batch, d)``."""
    if self.norm not in _NORMS:
      raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")
    if x.ndim == 3:
      x = x[..., None]
    _ops.check_float64_xla(x.dtype)
    use_bias = self.norm == "none" if self.conv_bias is None else self.conv_bias
    for i in range(self.blocks):
      x = Conv(self.hidden, use_bias=use_bias, conv_impl=self.conv_impl,
               name=f"conv_{i}")(x)
      if self.norm == "batch":
        x = BatchStatNorm(name=f"norm_{i}")(x)
      # max-pool then ReLU: the same numbers as ReLU then max-pool (ReLU is
      # monotone), with the ReLU and its gradient on a 4x smaller array.
      x = _ops.max_pool_2x2(x)
      x = nn.relu(x)
    return x.reshape(x.shape[0], -1)


class ConvNet(nn.Module):
  """The 4-block conv net of MAML and ProtoNets with a linear head.

  Attributes:
    ways: width of the linear head (number of classes per task).
    hidden: filters per convolution.
    blocks: number of conv blocks.
    norm: ``"batch"`` (default) or ``"none"``; see the module docstring.
    conv_impl: ``"auto"`` (default: ``"xla_vjp"`` on CPU, ``"xla"``
      elsewhere), ``"matmul"``, ``"matmul_vjp"``, ``"xla"`` or ``"xla_vjp"``;
      see the module docstring.
    conv_bias: conv biases; ``None`` (default): only when ``norm="none"``.

  Examples:
    >>> net = ConvNet(ways=5)
    >>> x = jnp.zeros((10, 28, 28, 1))
    >>> params = net.init(jax.random.PRNGKey(0), x)
    >>> net.apply(params, x).shape
    (10, 5)

  References:
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation
    of Deep Networks", ICML 2017. Vinyals et al., "Matching Networks for One
    Shot Learning", NeurIPS 2016.
  """

  ways: int
  hidden: int = 64
  blocks: int = 4
  norm: str = "batch"
  conv_impl: str = "auto"
  conv_bias: Optional[bool] = None

  def setup(self):
    self.body = ConvBody(hidden=self.hidden, blocks=self.blocks,
                         norm=self.norm, conv_impl=self.conv_impl,
                         conv_bias=self.conv_bias)
    self.head = nn.Dense(self.ways,
                         kernel_init=nn.initializers.xavier_uniform())

  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps images ``(batch, height, width[, channels])`` to logits."""
    return self.head(self.body(x))

  def features(self, x: jax.Array) -> jax.Array:
    """The body's features, shape ``(batch, d)``; ``apply(..., method=...)``."""
    return self.body(x)
