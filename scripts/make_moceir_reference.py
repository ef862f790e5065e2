"""Write the MoCE-IR compatibility data of ``tests/models/data`` from the official code.

Run once, by hand, with the published ``src/net/moce_ir.py`` of eduardzamfir/MoCE-IR (it needs
``einops``; its ``fvcore`` import, used only for FLOP counts, is replaced by a stub). forgetir
itself never imports the official file nor needs einops::

    pip install --target /tmp/einops einops
    PYTHONPATH=src:/tmp/einops python scripts/make_moceir_reference.py /path/to/moce_ir.py

Writes ``moceir_keys.tsv`` / ``moceir-s_keys.tsv`` (every state_dict entry of the two published
configurations, as built by the official options) and ``moceir_reference.safetensors``: for each
configuration of ``tests/models/moceir_reference.py`` (weights derived from parameter names),
the official output for one image in eval mode, and for a batch in training mode the output,
the balance loss and every parameter's gradient norm.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import safetensors.torch
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "models" / "data"
sys.path.insert(0, str(ROOT / "tests" / "models"))
from moceir_reference import (  # noqa: E402
    CONFIGS,
    EVAL_SEED,
    TRAIN_SEED,
    inputs,
    reference_weights,
)

# The published options (src/options.py: moce_ir_s / moce_ir), as passed by its train.py.
PUBLISHED = {
    "num_blocks": [4, 6, 6, 8],
    "num_dec_blocks": [2, 4, 4],
    "levels": 4,
    "heads": [1, 2, 4, 8],
    "num_refinement_blocks": 4,
    "topk": 1,
    "num_experts": 4,
    "rank": 2,
    "with_complexity": False,
    "depth_type": "constant",
    "stage_depth": [1, 1, 1],
    "rank_type": "spread",
    "complexity_scale": "max",
}


def load_official(path: Path) -> types.ModuleType:
    stub = types.ModuleType("fvcore.nn")
    stub.FlopCountAnalysis = stub.flop_count_table = None  # type: ignore[attr-defined]
    sys.modules.setdefault("fvcore", types.ModuleType("fvcore"))
    sys.modules["fvcore.nn"] = stub
    spec = importlib.util.spec_from_file_location("official_moce_ir", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def write_keys(official: types.ModuleType) -> None:
    for name, dim in (("moceir-s", 32), ("moceir", 48)):
        model = official.MoCEIR(dim=dim, **PUBLISHED)
        rows = [f"{k}\t{tuple(v.shape)}" for k, v in model.state_dict().items()]
        (DATA / f"{name}_keys.tsv").write_text("\n".join(rows) + "\n")
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {len(rows)} entries, {n:,} parameters")


def reference_outputs(official: types.ModuleType) -> dict[str, torch.Tensor]:
    x_eval, x_train = inputs()
    out = {"input_eval": x_eval, "input_train": x_train}
    for cname, kwargs in CONFIGS.items():
        model = reference_weights(official.MoCEIR(**kwargs))
        model.eval()
        torch.manual_seed(EVAL_SEED)  # the published router draws noise at inference too
        with torch.no_grad():
            out[f"{cname}/eval"] = model(x_eval)
        model.train()
        torch.manual_seed(TRAIN_SEED)
        y = model(x_train)
        aux = model.total_loss
        (y.square().mean() + 0.01 * aux).backward()
        out[f"{cname}/train"] = y.detach()
        out[f"{cname}/aux"] = torch.as_tensor(aux).detach().reshape(1)
        norms = [
            p.grad.norm() if p.grad is not None else torch.tensor(0.0) for p in model.parameters()
        ]
        out[f"{cname}/grad_norms"] = torch.stack(norms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("official", type=Path, help="the published src/net/moce_ir.py")
    args = parser.parse_args()
    torch.set_num_threads(1)
    official = load_official(args.official)
    write_keys(official)
    tensors = {k: v.contiguous() for k, v in reference_outputs(official).items()}
    safetensors.torch.save_file(tensors, str(DATA / "moceir_reference.safetensors"))
    print("wrote", DATA / "moceir_reference.safetensors")


if __name__ == "__main__":
    main()
