"""The MLP of MAML's sinusoid experiments."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """A ReLU multi-layer perceptron.

  The default, ``MLP()``, is the 1-40-40-1 network of Finn et al. (2017) for
  sinusoid regression (the input width is inferred from the data).

  Attributes:
    hidden: widths of the hidden layers.
    out: width of the output layer.
    flatten: flatten each example first (``(n, *shape) -> (n, prod(shape))``,
      e.g. for images); the parameters are the same either way.
  """

  hidden: Sequence[int] = (40, 40)
  out: int = 1
  flatten: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.flatten:
      x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, name=f"hidden_{i}")(x))
    return nn.Dense(self.out, name="head")(x)
