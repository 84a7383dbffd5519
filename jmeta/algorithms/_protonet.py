"""Prototypical Networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmeta._base import MetaLearner
from jmeta.algorithms._embedding import EmbedFn, Head, embedding_based


def class_means(zs: jax.Array, ys_onehot: jax.Array) -> jax.Array:
  """The mean support embedding of every class.

  Args:
    zs: support features, shape ``(n_support, d)``.
    ys_onehot: one-hot labels, shape ``(n_support, ways)``.

  Returns:
    Prototypes, shape ``(ways, d)``; a class without support examples gets the
    zero vector.
  """
  counts = jnp.sum(ys_onehot, axis=0).reshape(-1, 1)
  return (ys_onehot.T @ zs) / jnp.maximum(counts, 1)


def squared_distances(zq: jax.Array, prototypes: jax.Array) -> jax.Array:
  """Squared euclidean distances, shape ``(n_query, ways)``, of ``(n_query, d)`` to ``(ways, d)``."""
  diff = zq[:, None, :] - prototypes[None, :, :]
  return jnp.sum(diff * diff, axis=-1)


def protonet_head() -> Head:
  """The ProtoNets head: logits are minus squared distances to class means."""
  return Head(init=lambda key: {},
              fit=lambda hp, zs, ys: class_means(zs, ys),
              logits=lambda hp, prototypes, zq: -squared_distances(zq, prototypes))


def protonet(embed: EmbedFn, *, ways: int) -> MetaLearner:
  """Prototypical Networks.

  Each class is represented by the mean of its embedded support examples (its
  prototype); a query's logits are the negative squared euclidean distances
  of its embedding to the prototypes, ``-||f(x) - c_k||^2``, and the
  embedding is meta-learned through the query cross-entropy.

  Args:
    embed: ``embed(params, x) -> (n, d)``, e.g. ``ConvBody().apply``; it runs
      once over a task's support and query images together.
    ways: classes per task.

  Returns:
    A ``MetaLearner`` whose meta-parameters are ``{"embed": params, "head":
    {}}``. Use one learner per ``ways`` (training with more ways than testing,
    as Snell et al. do, is two learners sharing the meta-parameters).

  Examples:
    >>> body = ConvBody()
    >>> learner = jmeta.protonet(body.apply, ways=5)
    >>> step = jmeta.make_meta_step(learner, optax.adam(1e-3))
    >>> state = step.init(key, body.init(key, images))

  References:
    Snell, Swersky and Zemel, "Prototypical Networks for Few-shot Learning",
    NeurIPS 2017.
  """
  return embedding_based(embed, protonet_head(), ways=ways)
