"""Measure the deletion-request and content-class scenarios of the shipped models.

Usage:
    python scripts/measure_scenarios.py instances [LABEL=MODEL ...] [--ref MODEL ...]
    python scripts/measure_scenarios.py class [LABEL=MODEL ...]

``instances``: the per-example attack (:func:`forgetir.scenarios.instance_attack`) on the
forgotten / kept / non-member images of ``mem-ut.split.json`` (inpaint_4), models side by side
(default: BEFORE = shipped:mem-before, UT = shipped:mem-ut; references = shipped:inpaint-before,
the parent, which saw no candidate). ``class``: per-image PSNR of each model on held-out images
of every class (default: shipped:class-before vs shipped:class-ut-motif). Prints JSON.
"""

from __future__ import annotations

import json
import sys

import torch

from forgetir.checkpoint import load_model
from forgetir.data.splits import load_manifest
from forgetir.scenarios import candidate_pairs, class_skill, instance_attack
from forgetir.shipped import resolve_checkpoint, shipped_split


def _load(spec: str) -> torch.nn.Module:
    model = load_model(resolve_checkpoint(spec)).eval()
    return model


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    kind, rest = argv[0], argv[1:]
    refs = [a for a in rest[rest.index("--ref") + 1 :]] if "--ref" in rest else []
    rest = rest[: rest.index("--ref")] if "--ref" in rest else rest
    pairs = dict(a.split("=", 1) for a in rest)
    if kind == "instances":
        pairs = pairs or {"BEFORE": "shipped:mem-before", "UT": "shipped:mem-ut"}
        split = pairs.pop("split", None) or shipped_split("mem-ut")
        manifest = load_manifest(split, verify=True)
        cands = candidate_pairs(manifest, "inpaint_4")
        models = {k: _load(v) for k, v in pairs.items()}
        references = [_load(r) for r in (refs or ["shipped:inpaint-before"])]
        result = instance_attack(models, cands, references)
        result["split"] = str(split)
        result["references"] = refs or ["shipped:inpaint-before"]
    elif kind == "class":
        pairs = pairs or {"BEFORE": "shipped:class-before", "UT": "shipped:class-ut-motif"}
        models = {k: _load(v) for k, v in pairs.items()}
        classes = ["disks", "squares", "stripes", "motif"]
        result = class_skill(models, classes, ["denoise_25", "inpaint_4"], n=32, size=64)
    else:
        raise SystemExit(f"unknown scenario {kind!r}; valid: instances, class")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
