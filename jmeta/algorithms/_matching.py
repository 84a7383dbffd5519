"""Matching Networks (without full-context embeddings)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmeta._base import MetaLearner
from jmeta.algorithms._embedding import EmbedFn, Head, embedding_based


def cosine_attention(zq: jax.Array, zs: jax.Array, *, scale: float = 1.0,
                     eps: float = 1e-8) -> jax.Array:
  """Softmax over the support set of cosine similarities.

  Args:
    zq: query features, shape ``(n_query, d)``.
    zs: support features, shape ``(n_support, d)``.
    scale: multiplies the cosines before the softmax (1 in Vinyals et al.).
    eps: guards the norms of zero vectors.

  Returns:
    Attention weights ``a(x_q, x_i)``, shape ``(n_query, n_support)``; every
    row sums to one.
  """
  def unit(z):
    return z / jnp.sqrt(jnp.sum(z * z, axis=-1, keepdims=True) + eps)
  return jax.nn.softmax(scale * (unit(zq) @ unit(zs).T), axis=-1)


def matching_head(scale: float = 1.0) -> Head:
  """The Matching Networks head: attention-weighted support labels."""

  def logits(hp, support, zq):
    zs, ys = support
    probs = cosine_attention(zq, zs, scale=scale) @ ys
    # Log-probabilities: softmax(log p) = p, so cross-entropy is -log p(y).
    return jnp.log(probs + jnp.finfo(probs.dtype).tiny)

  return Head(init=lambda key: {}, fit=lambda hp, zs, ys: (zs, ys), logits=logits)


def matching_networks(embed: EmbedFn, *, ways: int, scale: float = 1.0) -> MetaLearner:
  """Matching Networks with cosine attention over the support set.

  The predicted distribution of a query is ``sum_i a(x, x_i) y_i`` where
  ``a`` is the softmax over the support set of cosine similarities between
  embeddings and ``y_i`` are one-hot support labels; the embedding is learned
  through the query cross-entropy ``-log p(y)``. The "logits" the learner
  exposes are these log-probabilities.

  This is the variant *without full-context embeddings* (FCE): query and
  support use the same embedding ``f = g`` (no bidirectional LSTM over the
  support set and no attention LSTM on the query), which is how Vinyals et
  al.'s Omniglot results were obtained (FCE was only used on miniImageNet).

  Args:
    embed: ``embed(params, x) -> (n, d)``.
    ways: classes per task.
    scale: multiplier of the cosines in the attention softmax (a fixed
      temperature; 1.0 is the paper's).

  Returns:
    A ``MetaLearner`` with meta-parameters ``{"embed": params, "head": {}}``.

  References:
    Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra, "Matching Networks
    for One Shot Learning", NeurIPS 2016.
  """
  if not scale > 0:
    raise ValueError(f"scale must be positive; got {scale!r}.")
  return embedding_based(embed, matching_head(scale), ways=ways)
