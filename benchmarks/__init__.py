"""jmeta's benchmark harness: jmeta against learn2learn, higher, TorchOpt and torch.func.

Run ``python -m benchmarks run SUITE [--out DIR] [--quick]`` with SUITE one of

* ``speed``: meta-steps/s of second-order MAML on sinusoid regression (MLP
  1-40-40-1, 25 tasks, 1 and 5 inner steps) and Omniglot 5-way 1-shot (the
  4-block conv net), jmeta beside each peer on the same weights and batches,
  after a float64 meta-gradient agreement check; compile time, import time,
  first-call latency, peak RSS, and XLA FLOPs as a fraction of the machine's
  measured matmul peak.
* ``memory``: peak RSS against 1/10/100/1000 inner steps.
* ``accuracy``: runs the accuracy benchmarks (``benchmarks/*_table.py``).
* ``scaling``: meta-batch 1..256 and virtual device counts.
* ``all``: each of the above.

Results go to ``benchmarks/results/<suite>-<timestamp>/`` (``results.json``,
``report.md``, PNG plots) and ``benchmarks/results/latest_<suite>.md``. The
PyTorch peers are optional (``bash benchmarks/install_peers.sh``); a peer that
is missing or fails is reported as such.

``benchmarks/gpu/`` is the one prepared, time-boxed GPU run (tests, the speed
suite with the peers on the GPU, Omniglot training); see its README.md.
"""
