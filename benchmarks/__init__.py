"""jmeta's benchmark harness: jmeta against hand-written JAX, learn2learn, higher, TorchOpt and torch.func.

``python -m benchmarks list`` prints every suite and experiment and the README
figure it produces. Run ``python -m benchmarks run SUITE [--out DIR] [--quick]``
with SUITE one of

* ``speed``: meta-steps/s of second-order MAML on sinusoid regression (MLP
  1-40-40-1, 25 tasks, 1 and 5 inner steps) and Omniglot 5-way 1-shot (the
  4-block conv net), jmeta beside hand-written plain-JAX meta-steps (``jax``,
  ``jax-scan``: ``benchmarks/_plain_jax.py``) and each peer on the same weights
  and batches, after a float64 meta-gradient agreement check; compile time,
  import time, first-call latency, peak RSS, and XLA FLOPs as a fraction of
  the machine's measured matmul peak.
* ``conv``: the conv net under MAML, first-order MAML, ANIL and ProtoNets at 5
  and 20 ways: jmeta, plain JAX and learn2learn.
* ``memory``: peak RSS against 1/10/100/1000 inner steps.
* ``accuracy``: runs the accuracy tables (``benchmarks.experiments.sinusoid_table``,
  ``benchmarks.omniglot_table``).
* ``scaling``: meta-batch 1..256 and virtual device counts.
* ``all``: each of the above.

``python -m benchmarks compare RUN RUN ...`` puts runs of one suite side by
side with their library versions (e.g. jax 0.10 against 0.12). Experiments
outside the suites are ``python -m benchmarks.experiments.NAME``.

Results go to ``benchmarks/results/<suite>-<timestamp>/`` (``results.json``,
``report.md``, PNG plots) and ``benchmarks/results/latest_<suite>.md``. The
PyTorch peers are optional (``bash benchmarks/install_peers.sh``); a peer that
is missing or fails is reported as such.

``benchmarks/gpu/`` is the one prepared, time-boxed GPU run (tests, the speed
suite with the peers on the GPU, Omniglot training); see its README.md.
"""
