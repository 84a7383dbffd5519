"""The PyTorch peers of the benchmark harness: learn2learn, higher, TorchOpt, torch.func.

Each peer implements the same MAML configurations as the jmeta side
(``benchmarks._jax_side``) on the same weights and task batches. Nothing here
is imported by jmeta; torch is imported only when a peer is built.
"""

PEERS = ("learn2learn", "higher", "torchopt", "torch.func")
