# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jmeta-dev/jmeta/blob/main/notebooks/02_omniglot_few_shot.ipynb)
#
# # Few-shot classification on Omniglot: ProtoNets and MAML
#
# Omniglot (Lake et al., 2015) holds 1,623 handwritten characters from 50 alphabets, each drawn by 20
# people. A *5-way 1-shot episode* shows the learner one drawing of each of 5 new characters and asks it
# to label further drawings of them. This notebook
#
# 1. prepares Omniglot with tensorflow-datasets (no TensorFlow needed: jmeta's builder writes
#    array_record files) and loads it as class-indexed arrays on the device;
# 2. shows an episode;
# 3. meta-trains Prototypical Networks (Snell et al., 2017) and MAML (Finn et al., 2017) on the 4-block
#    conv net for a few minutes each;
# 4. meta-tests them with 95% confidence intervals, and shows the mistakes.

# %%
# Setup. On Colab this installs jmeta (a CPU runtime is enough; a GPU one is faster).
# JMETA_SMALL=1 shrinks every setting to a smoke test: that is how CI runs this notebook.
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "jmeta @ git+https://github.com/jmeta-dev/jmeta"], check=True)
SMALL = os.environ.get("JMETA_SMALL", "0") == "1"
print("small settings (CI)" if SMALL else "full settings")

# %% [markdown]
# ## Settings
#
# The full settings train each learner for `TIME_BUDGET` seconds: on a 2-core CPU runtime that is far
# from the papers' 60,000 meta-steps, so expect lower accuracies than theirs (a GPU runtime gets much
# further in the same time). `SMALL` (CI) uses a tiny made-up dataset and a tiny network.

# %%
import tempfile
import time
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import jmeta
from jmeta import data as jdata
from jmeta import ConvBody, ConvNet

WAYS, SHOTS = 5, 1
QUERIES = 2 if SMALL else 15          # query drawings per class
HIDDEN = 8 if SMALL else 64           # filters per convolution (64 in the papers)
BLOCKS = 2 if SMALL else 4            # conv blocks (4 in the papers; 2 compile faster in CI)
META_BATCH = 4 if SMALL else 8        # episodes per meta-step
TIME_BUDGET = 0 if SMALL else 120     # seconds of meta-training per learner, after compilation
MAX_STEPS = 4 if SMALL else 60_000
LOG_EVERY = 2 if SMALL else 20        # meta-steps per compiled block (the budget is checked between blocks)
EVAL_EPISODES = 8 if SMALL else 600
print(jax.devices())

# %% [markdown]
# ## The data
#
# `jmeta.data.load_omniglot` prepares the dataset once (tensorflow-datasets, array_record format) from the
# two official archives, resizes the images to 28x28 and caches them, then returns the meta-train and
# meta-test classes as arrays of shape `(classes, 20 drawers, 28, 28, 1)`. We use the split of Vinyals et
# al. (2016): 1,200 characters for meta-training, 423 for meta-testing, each rotated by 90, 180 and 270
# degrees to make new classes.
#
# * On Colab, `download=True` fetches the archives (about 15 MB).
# * Locally, point `OMNIGLOT_DIR` at a folder holding `images_background.zip` and
#   `images_evaluation.zip`.
# * In CI (`SMALL`), two tiny archives of the same layout with random pixels are written on the spot.

# %%
DATA_DIR = os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))
LOCAL = os.environ.get("OMNIGLOT_DIR", "../../shared/data/omniglot")

t0 = time.time()
if SMALL:
    root = tempfile.mkdtemp()
    counts = jdata.write_fake_omniglot(os.path.join(root, "manual"),
                                       {"images_background": [4, 4], "images_evaluation": [3, 3]},
                                       drawers=4)
    splits = jdata.load_omniglot(root, manual_dir=os.path.join(root, "manual"), split="lake", num_valid=0,
                                 rotations=True, config=jdata.OmniglotConfig(name="tiny", expected_counts=counts))
else:
    os.makedirs(DATA_DIR, exist_ok=True)
    have_local = os.path.isfile(os.path.join(LOCAL, "images_background.zip"))
    splits = jdata.load_omniglot(DATA_DIR, manual_dir=LOCAL if have_local else None, download=not have_local,
                                 split="vinyals", num_valid=0, rotations=True)
train_classes, test_classes = splits.train, splits.test
print(f"meta-train {train_classes.shape}, meta-test {test_classes.shape} ({time.time() - t0:.0f} s)")

# %% [markdown]
# ## An episode
#
# `jmeta.sample_episodes(key, classes, ways, shots, queries, batch)` draws a batch of episodes on the
# device (it is `jit`-able, so meta-training samples episodes inside the compiled loop). Labels are a
# fresh random assignment in every episode: the learner cannot memorise which character is "class 0".

# %%
episode = jmeta.sample_episodes(jax.random.key(0), train_classes, ways=WAYS, shots=SHOTS,
                                queries=QUERIES, batch=1)
episode = jax.tree.map(lambda v: v[0], episode)
shown = min(QUERIES, 5)
fig, axes = plt.subplots(WAYS, 1 + shown, figsize=(1.3 * (1 + shown), 1.3 * WAYS))
for label in range(WAYS):
    axes[label, 0].imshow(episode.support_x[label * SHOTS, ..., 0], cmap="gray_r")
    axes[label, 0].set_ylabel(f"label {label}")
    for j in range(shown):
        axes[label, 1 + j].imshow(episode.query_x[label * QUERIES + j, ..., 0], cmap="gray_r")
axes[0, 0].set_title("support")
axes[0, 1].set_title("queries")
for ax in axes.ravel():
    ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# ## Two learners on one conv net
#
# * **ProtoNets** embed every image with the conv body (`ConvBody`: four blocks of 3x3 convolution,
#   batch-statistics normalisation, ReLU and 2x2 max-pooling) and label a query by its nearest class mean
#   ("prototype") in that space. There is no inner loop: the meta-parameters are the embedding.
# * **MAML** puts a 5-way linear head on the same body (`ConvNet`) and adapts the whole network with one
#   SGD step of learning rate 0.4 on the support set, as in Finn et al.'s 5-way Omniglot setting.
#
# Both are meta-trained with Adam (1e-3) through `jmeta.make_meta_step` and `jmeta.fit`, which draws the
# episodes on the device inside each compiled block of meta-steps.

# %%
x0 = jnp.zeros((2, *train_classes.shape[2:]), jnp.float32)
body = ConvBody(hidden=HIDDEN, blocks=BLOCKS)
net = ConvNet(ways=WAYS, hidden=HIDDEN, blocks=BLOCKS)
learners = {
    "ProtoNets": (jmeta.algorithms.protonet(body.apply, ways=WAYS), body.init(jax.random.key(1), x0)),
    "MAML": (jmeta.maml(jmeta.cross_entropy_loss(net.apply), optax.sgd(0.4), steps=1),
             net.init(jax.random.key(1), x0)),
}

def sample_train(key, n):
    return jmeta.sample_episodes(key, train_classes, ways=WAYS, shots=SHOTS, queries=QUERIES, batch=n)

trained, curves = {}, {}
for name, (learner, params) in learners.items():
    step = jmeta.make_meta_step(learner, optax.adam(1e-3))
    state = step.init(jax.random.key(2), params)
    t0, first, curves[name] = time.time(), None, []
    for state, record in jmeta.fit(step, state, sample_train, key=jax.random.key(3),
                                   iterations=MAX_STEPS, meta_batch=META_BATCH, log_every=LOG_EVERY):
        first = first or time.time() - t0  # the first block includes compilation
        curves[name].append(record)
        if time.time() - t0 - first >= TIME_BUDGET:
            break
    trained[name] = state.meta_params
    print(f"{name}: {record['step']} meta-steps in {time.time() - t0:.0f} s (compilation {first:.0f} s),"
          f" training accuracy {record['query_accuracy']:.3f}")

plt.figure(figsize=(6, 3.5))
for name, curve in curves.items():
    plt.plot([r["step"] for r in curve], [r["query_accuracy"] for r in curve], label=name)
plt.xlabel("meta-step"); plt.ylabel("query accuracy (training episodes)"); plt.legend()
plt.show()


# %% [markdown]
# ## Meta-test with confidence intervals
#
# `jmeta.evaluate` draws held-out episodes from the meta-test characters (never seen in training) and
# returns the mean accuracy and the half-width of its 95% confidence interval. MAML adapts with the one
# step it was trained with; ProtoNets have no inner steps.

# %%
def sample_test(key, n):
    return jmeta.sample_episodes(key, test_classes, ways=WAYS, shots=SHOTS, queries=QUERIES, batch=n)

results = {}
for name, (learner, _) in learners.items():
    steps = 0 if name == "ProtoNets" else 1
    table = jmeta.evaluate(learner, trained[name], sample_test, jax.random.key(4),
                           num_tasks=EVAL_EPISODES, steps=(steps,), batch_size=min(EVAL_EPISODES, 20))
    results[name] = table[steps]["query_accuracy"]
    mean, ci = results[name]
    print(f"{name:>10}: {WAYS}-way {SHOTS}-shot accuracy {100 * mean:.1f} +/- {100 * ci:.1f} %"
          f" over {EVAL_EPISODES} episodes")
    assert 0.0 <= mean <= 1.0

plt.figure(figsize=(4, 3.5))
names = list(results)
plt.bar(names, [100 * results[n][0] for n in names], yerr=[100 * results[n][1] for n in names], capsize=5)
plt.axhline(100 / WAYS, color="gray", linestyle=":", label="chance")
plt.ylabel("meta-test accuracy, % (95% CI)"); plt.legend()
plt.show()

# %% [markdown]
# ## The mistakes
#
# `learner.predict` adapts to a support set and returns logits for the queries (the same call for every
# learner: MAML's model is the one its loss was built from); under `vmap` it runs
# over a batch of episodes at once. For each wrong query below: the query, the support drawing of the
# class the learner chose, and the support drawing of the right class.

# %%
episodes = sample_test(jax.random.key(5), 20)
predict = {
    "ProtoNets": lambda mp, t: learners["ProtoNets"][0].predict(mp, t.support_x, t.support_y, t.query_x),
    "MAML": lambda mp, t: learners["MAML"][0].predict(mp, t.support_x, t.support_y, t.query_x),
}
for name, fn in predict.items():
    logits = jax.jit(jax.vmap(fn, in_axes=(None, 0)))(trained[name], episodes)
    guess = np.asarray(jnp.argmax(logits, -1))
    wrong = np.argwhere(guess != np.asarray(episodes.query_y))[:8]  # (episode, query) pairs
    print(f"{name}: {len(np.argwhere(guess != np.asarray(episodes.query_y)))} mistakes out of {guess.size} queries")
    if len(wrong) == 0:
        continue
    fig, axes = plt.subplots(3, len(wrong), figsize=(1.3 * len(wrong), 4.2), squeeze=False)
    for col, (e, q) in enumerate(wrong):
        chosen, right = guess[e, q], int(episodes.query_y[e, q])
        for row, image in enumerate((episodes.query_x[e, q], episodes.support_x[e, chosen * SHOTS],
                                     episodes.support_x[e, right * SHOTS])):
            axes[row, col].imshow(image[..., 0], cmap="gray_r")
            axes[row, col].set_xticks([]); axes[row, col].set_yticks([])
    for row, label in enumerate(("query", "chosen", "right")):
        axes[row, 0].set_ylabel(label)
    fig.suptitle(f"{name}: mistakes")
    plt.show()

# %% [markdown]
# ## Going further
#
# * `jmeta train --dataset omniglot --data-dir <folder> --algo protonet` (or `maml`, `matching`, `r2d2`,
#   `anil`, ...) runs the same experiment from the command line, with validation and more meta-steps.
# * 20-way: `WAYS = 20` with MAML's five inner steps of 0.1 (`jmeta.maml(..., optax.sgd(0.1), steps=5)`).
