"""Measure the deletion-request and content-class scenarios of the shipped models.

Usage:
    python scripts/measure_scenarios.py instances [LABEL=MODEL ...] [--ref MODEL ...]
        [--shadow MODEL ...]
    python scripts/measure_scenarios.py class [LABEL=MODEL ...]

``instances``: the per-example attack (:func:`forgetir.membership.scenarios.instance_attack`) on the
forgotten / kept / non-member images of ``mem-ut.split.json`` (inpaint_4), models side by side
(default: BEFORE = shipped:mem-before, UT = shipped:mem-ut; references = shipped:inpaint-before,
the parent, which saw no candidate; ``--shadow``: OUT shadow models for offline LiRA, trained
with the same recipe on other images). ``class``: per-image PSNR of each model on held-out images
of every class (default: shipped:class-before vs shipped:class-ut-motif). Prints JSON.
"""

from __future__ import annotations

import json
import sys

import torch

from forgetir.checkpoint import load_model
from forgetir.checkpoint.shipped import resolve_checkpoint, shipped_split
from forgetir.checks.verify import membership_inference
from forgetir.data.splits import load_manifest
from forgetir.membership.scenarios import candidate_pairs, class_skill, instance_attack


def _load(spec: str) -> torch.nn.Module:
    model = load_model(resolve_checkpoint(spec)).eval()
    return model


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    kind, rest = argv[0], argv[1:]
    opts: dict[str, list[str]] = {"--ref": [], "--shadow": []}
    key = None
    plain = []
    for a in rest:
        if a in opts:
            key = a
        elif key is None:
            plain.append(a)
        else:
            opts[key].append(a)
    refs, shadows = opts["--ref"], opts["--shadow"]
    pairs = dict(a.split("=", 1) for a in plain)
    if kind == "instances":
        pairs = pairs or {"BEFORE": "shipped:mem-before", "UT": "shipped:mem-ut"}
        split = pairs.pop("split", None) or shipped_split("mem-ut")
        manifest = load_manifest(split, verify=True)
        cands = candidate_pairs(manifest, "inpaint_4")
        models = {k: _load(v) for k, v in pairs.items()}
        references = [_load(r) for r in (refs or ["shipped:inpaint-before"])]
        result = instance_attack(models, cands, references, [_load(m) for m in shadows])
        # the population attack of forgetir.checks.verify, kept as the baseline
        for label, m in models.items():
            base = membership_inference(m, cands["kept"], cands["nonmembers"], cands["forgotten"])
            result["models"][label]["population_baseline"] = {
                k: base[k] for k in ("attack_auc", "forgotten_vs_nonmembers_auc", "attack_accuracy")
            }
        result["split"] = str(split)
        result["references"] = refs or ["shipped:inpaint-before"]
        result["shadows_out"] = shadows
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
