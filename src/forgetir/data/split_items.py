"""The training items a split chooses among: (source key, index) pairs, their manifest entries,
requested images found by id or path, and seeded held-out draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetir.data.folders import PairedImages, _listing
from forgetir.data.pool import CleanSource
from forgetir.errors import InvalidInputError


def all_items(clean: CleanSource | None, pairs: dict[str, PairedImages]) -> list[tuple[str, int]]:
    """Every training item as (key, index): key "clean" or the task of a pair source."""
    out = [("clean", i) for i in range(len(clean))] if clean is not None else []
    for task, src in pairs.items():
        out += [(task, i) for i in range(len(src))]
    return out


def source_of(key: str, clean: CleanSource | None, pairs: dict[str, PairedImages]) -> Any:
    return clean if key == "clean" else pairs[key]


def item_entries(
    items: Sequence[tuple[str, int]], clean: CleanSource | None, pairs: dict[str, PairedImages]
) -> list[dict[str, Any]]:
    out = []
    for key, i in items:
        rec = source_of(key, clean, pairs).entry(i)
        if key != "clean":
            rec["task"] = key
        out.append(rec)
    return out


def part_record(tasks: list[str], classes: list[str] | None, entries: list[dict]) -> dict[str, Any]:
    return {"tasks": tasks, "classes": classes, "count": len(entries), "entries": entries}


def match_requested(
    requested: Sequence[str],
    items: list[tuple[str, int]],
    clean: CleanSource | None,
    pairs: dict[str, PairedImages],
    label: str,
) -> list[tuple[str, int]]:
    """Items named by ``requested`` (ids, or paths of their files); error listing unknowns."""
    by_name: dict[str, tuple[str, int]] = {}
    by_path: dict[str, tuple[str, int]] = {}
    for key, i in items:
        src = source_of(key, clean, pairs)
        by_name.setdefault(src.name(i), (key, i))
        for attr in ("path", "target_path"):
            fn = getattr(src, attr, None)
            if callable(fn):
                by_path.setdefault(str(Path(fn(i)).resolve()), (key, i))
    found: list[tuple[str, int]] = []
    missing: list[str] = []
    for req in dict.fromkeys(requested):  # de-duplicated, in order
        hit = by_name.get(req) or by_path.get(str(Path(req).expanduser().resolve()))
        if hit is None:
            missing.append(req)
        elif hit not in found:
            found.append(hit)
    if missing:
        examples = list(by_name)[:3]
        raise InvalidInputError(
            f"{len(missing)} of {len(dict.fromkeys(requested))} requested images are not in "
            f"{label}: {_listing(missing)} (ids look like: {', '.join(examples)})"
        )
    return found


def held_out_files(
    items: list[tuple[str, int]],
    groups: dict[tuple[str, int], str],
    fraction: float,
    seed: int,
    exclude: set[tuple[str, int]],
) -> list[tuple[str, int]]:
    """Seeded draw of ``fraction`` of the items of each group (at least one per group of 2+)."""
    if not 0 <= fraction < 1:
        raise InvalidInputError(f"held_out_fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return []
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int]] = []
    for g in sorted(set(groups.values())):
        members = [it for it in items if groups[it] == g and it not in exclude]
        k = max(1, round(fraction * len(members))) if len(members) >= 2 else 0
        picks = rng.permutation(len(members))[:k]
        out += [members[p] for p in sorted(picks)]
    return out
