"""A run folder and what it rests on.

- :mod:`.folder`: the files of a run folder, their names, reads, writes and hash checks
  (``RunFolder``);
- :mod:`.testbed`: the models and test sets a run was scored on, rebuilt from its records;
- :mod:`.fresh`: a live or ``fresh:MODEL`` model saved into the run as its parent;
- :mod:`.lock`: the locked ``.NAME.partial-*`` working folder of a run being written;
- :mod:`.seeds`: figures over the seed folders of ``--seeds N`` (mean ± sd).
"""
