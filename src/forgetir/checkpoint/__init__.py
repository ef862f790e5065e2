"""Weights as data: safetensors plus a JSON sidecar that says how to rebuild the model.

Layout written by :func:`save_model`:

- ``path`` ending in ``.safetensors`` -> that file plus ``<stem>.json`` beside it;
- any other ``path`` without a suffix (or an existing directory) -> ``model.safetensors`` and
  ``model.json`` inside that directory (created if needed).

The sidecar records the registry name and constructor arguments, the parent checkpoint and its
SHA-256, the command and metrics that produced the weights, versions, and the SHA-256 of the
weights file, which :func:`load_model` checks before trusting the file.

:func:`load_model` also imports the published PromptIR/AdaIR Lightning ``.ckpt`` files and plain
``.pth`` state dicts (pass ``arch``). Files are read only with safetensors or
``torch.load(weights_only=True)``: a checkpoint that would need to run code to unpickle is refused.

The pieces: :mod:`.files` (paths, hashing, safetensors and PyTorch readers), :mod:`.sidecar`
(the JSON record), :mod:`.save` (:func:`save_model`) and :mod:`.load` (:func:`load_model`).

Example:
    >>> import tempfile, torch
    >>> from forgetir.checkpoint import load_model, save_model
    >>> from forgetir.models import create_model
    >>> model = create_model("promptir-tiny")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     file = save_model(model, f"{d}/tiny.safetensors", metrics={"psnr": 30.1})
    ...     again = load_model(file)
    >>> again.forgetir_meta["metrics"]
    {'psnr': 30.1}
"""

from __future__ import annotations

from forgetir.checkpoint.files import (
    FORMAT,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    SAVE_DTYPES,
    SIDECAR_NAME,
    TORCH_SUFFIXES,
    WEIGHTS_NAME,
    CheckpointError,
    sha256_file,
    weights_file,
)
from forgetir.checkpoint.load import load_model
from forgetir.checkpoint.save import save_model
from forgetir.checkpoint.sidecar import RESERVED_KEYS, read_sidecar

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "RESERVED_KEYS",
    "SAVE_DTYPES",
    "SIDECAR_NAME",
    "TORCH_SUFFIXES",
    "WEIGHTS_NAME",
    "CheckpointError",
    "load_model",
    "read_sidecar",
    "save_model",
    "sha256_file",
    "weights_file",
]
