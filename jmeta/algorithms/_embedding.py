"""The shared machinery of metric (embedding-based) few-shot learners.

ProtoNets, Matching Networks and R2-D2 share one shape: an embedding network
``embed(params, x) -> (n, d)`` maps a task's images to features, and a
differentiable *head* classifies the query features from the labelled support
features. There is no inner loop of gradient steps: "adaptation" is the head's
closed-form fit (class means, a ridge regression, or the support set itself).

The embedding runs once over all of a task's images (support and query
concatenated, as in Snell et al.'s reference code), so transductive batch
normalisation sees the whole episode. Under ``make_meta_step(...,
task_map="vmap")`` (the default) the embedding of every task of the meta-batch
is one batched program: ``vmap`` of a network with shared weights folds the task
axis into the batch axis of every convolution, so the body runs once over all
the tasks' images while its normalisation statistics stay per task.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner, Task
from jmeta._losses import check_labels

EmbedFn = Callable[[Any, jax.Array], jax.Array]


class Head(NamedTuple):
  """A differentiable few-shot classifier on top of embeddings.

  Attributes:
    init: ``init(key) -> head_params`` (a pytree, possibly empty ``{}``).
    fit: ``fit(head_params, zs, ys_onehot) -> classifier`` (a pytree), from
      support features ``(n_support, d)`` and one-hot labels
      ``(n_support, ways)``.
    logits: ``logits(head_params, classifier, zq) -> (n_query, ways)`` log-scores
      whose softmax is the predicted class distribution.
  """

  init: Callable[[jax.Array], Any]
  fit: Callable[[Any, jax.Array, jax.Array], Any]
  logits: Callable[[Any, Any, jax.Array], jax.Array]


def check_ways(ways: Any) -> int:
  """Returns ``ways`` if it is an int >= 2, else raises ``ValueError``."""
  if isinstance(ways, bool) or not isinstance(ways, int) or ways < 2:
    raise ValueError(f"ways must be an int >= 2 (classes per task); got {ways!r}.")
  return ways


def _features(embed: EmbedFn, params: Any, x: jax.Array) -> jax.Array:
  z = embed(params, x)
  if jnp.ndim(z) < 2 or jnp.shape(z)[0] != jnp.shape(x)[0]:
    raise ValueError(
        f"embed must map {jnp.shape(x)[0]} inputs to (n, features); got shape {jnp.shape(z)}.")
  return z.reshape(z.shape[0], -1)


def _onehot(y: jax.Array, ways: int, dtype) -> jax.Array:
  if jnp.ndim(y) != 1:
    raise ValueError(f"labels must have shape (n,) of ints in [0, ways); got shape {jnp.shape(y)}.")
  return jax.nn.one_hot(y, ways, dtype=dtype)


def _ce(logits: jax.Array, y: jax.Array, bad: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy and accuracy; NaN loss when the task's labels are ``bad``."""
  labels, _ = check_labels(y, logits.shape[-1])
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
  acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(logits.dtype))
  return jnp.where(bad, jnp.nan, loss), acc


def _bad_labels(support_y: jax.Array, support_onehot: jax.Array,
                query_y: Optional[jax.Array], ways: int) -> jax.Array:
  """True if a label is outside ``[0, ways)`` or a class has no support example."""
  bad = check_labels(support_y, ways)[1] | jnp.any(jnp.sum(support_onehot, axis=0) == 0)
  return bad if query_y is None else bad | check_labels(query_y, ways)[1]


def embedding_based(embed: EmbedFn, head: Head, *, ways: int) -> MetaLearner:
  """Builds a metric learner from an embedding and a head.

  The meta-parameters are ``{"embed": params, "head": head_params}``; both are
  learned by the outer optimizer through the query cross-entropy.

  Args:
    embed: ``embed(params, x) -> (n, d)`` features (e.g. a ``ConvBody``'s
      ``apply``); it is called once on the concatenated support and query
      images of a task.
    head: the ``Head``.
    ways: classes per task (labels are ints in ``[0, ways)``). A task with a
      label outside it, or a class without support examples, gets NaN losses
      and the metric ``bad_labels`` = 1, so the meta-step skips the update.

  Returns:
    A ``MetaLearner``. ``adapt`` returns the head's fitted classifier as
    ``params`` and the support loss, shape ``(1,)``, as ``losses``; ``task_loss``
    ignores ``step`` and ``steps`` (there is no inner loop); ``predict`` returns
    query logits ``(n_query, ways)``.
  """
  if not callable(embed):
    raise TypeError(f"embed must be callable; got {type(embed).__name__}.")
  ways = check_ways(ways)

  def init(key, params):
    return {"embed": params, "head": head.init(key)}

  def _split(meta_params, sx, qx):
    """Features of support and query from one embedding call."""
    if jnp.shape(sx)[1:] != jnp.shape(qx)[1:]:
      raise ValueError(f"support_x {jnp.shape(sx)} and query_x {jnp.shape(qx)} feature shapes differ.")
    z = _features(embed, meta_params["embed"], jnp.concatenate([sx, qx], axis=0))
    return z[:sx.shape[0]], z[sx.shape[0]:]

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    del steps
    zs = _features(embed, meta_params["embed"], x)
    onehot = _onehot(y, ways, zs.dtype)
    classifier = head.fit(meta_params["head"], zs, onehot)
    loss, _ = _ce(head.logits(meta_params["head"], classifier, zs), y,
                  _bad_labels(y, onehot, None, ways))
    return AdaptResult(classifier, loss.reshape(1))

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    del step, steps
    zs, zq = _split(meta_params, task.support_x, task.query_x)
    onehot = _onehot(task.support_y, ways, zs.dtype)
    bad = _bad_labels(task.support_y, onehot, task.query_y, ways)
    classifier = head.fit(meta_params["head"], zs, onehot)
    # Support and query logits in one call of the head.
    logits = head.logits(meta_params["head"], classifier, jnp.concatenate([zs, zq], axis=0))
    n = zs.shape[0]
    loss, acc = _ce(logits[n:], task.query_y, bad)
    support_loss, support_acc = _ce(logits[:n], task.support_y, bad)
    return loss, {"query_loss": loss, "query_accuracy": acc,
                  "support_loss": jax.lax.stop_gradient(support_loss),
                  "support_accuracy": jax.lax.stop_gradient(support_acc),
                  "bad_labels": bad.astype(loss.dtype)}

  def task_grad(meta_params, task: Task, step=0):
    return jax.grad(task_loss, has_aux=True)(meta_params, task, step)

  def predict(meta_params, support_x, support_y, query_x, *, steps=None):
    del steps
    zs, zq = _split(meta_params, support_x, query_x)
    classifier = head.fit(meta_params["head"], zs, _onehot(support_y, ways, zs.dtype))
    return head.logits(meta_params["head"], classifier, zq)

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad,
                     predict=predict)
