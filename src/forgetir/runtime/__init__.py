"""How the process runs: torchrun's group, the device, precision and random state
(:mod:`.process`), torch's thread count (:mod:`.threads`), freed-memory reuse (:mod:`.memory`)
and the progress display (:mod:`.progress`).
"""
