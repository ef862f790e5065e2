"""Test-suite set-up: one torch thread. The tests run tiny tensors, for which intra-op threads
cost more than they save (and much more on a busy machine)."""

import torch

torch.set_num_threads(1)
