"""A split is unlearned on the images as BEFORE was trained on them: flipped/rotated only if its
training was (``data.augment`` of its sidecar). The orbit methods rest on this."""

from __future__ import annotations

import torch

from forgetir.checkpoint.shipped import shipped_split
from forgetir.data.splits import load_manifest
from forgetir.membership.scenarios import candidate_pairs
from forgetir.options import UnlearnOptions
from forgetir.unlearn.inputs import load_inputs


def test_split_patches_of_a_model_trained_unturned_are_the_images_themselves(tmp_path):
    # shipped:mem-before was trained with data.augment=false on whole 32x32 images
    split = str(shipped_split("mem-ut"))
    opts = UnlearnOptions(method="finetune", patch_size=32, quiet=True, threads=1)
    inp = load_inputs("shipped:mem-before", None, tmp_path, opts, None, split, None, None)
    assert all(d.augment is False for d in inp.datasets.values())
    deleted = [c for _, c in candidate_pairs(load_manifest(split), "inpaint_4")["forgotten"]]
    for i in range(4):  # each drawn patch is one of the deleted images, in its own orientation
        clean = inp.datasets["forget"][i]["clean"]
        assert any(torch.equal(clean, d[0]) for d in deleted)
