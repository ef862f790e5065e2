"""The report of one unlearning run: ``report.html``, ``report.md`` and ``report.json``.

:func:`write_report` reads a run directory and writes

- ``report.html``: ONE self-contained page that opens offline (inline CSS, every image embedded
  as a base64 PNG ``data:`` URI, no script, no external CSS or fonts); all text is escaped;
- ``report.md`` with its figures as PNG files in ``report_files/`` (grids linked in place);
- ``report.json``: the audit manifest and every figure, machine-readable.

Run-directory layout (written by ``forgetir unlearn`` / ``forgetir demo``)::

    RUN_DIR/
      run.json            required. A JSON object:
                            "method": str (registry name)                            required
                            "parent": {"path": str, "sha256": str} (the BEFORE checkpoint) required
                            "hyperparameters": {...}, "target": str | null,
                            "split": {"kind": "degradation" | "class" | "instances",
                                      "forget": [...], "retain": [...],
                                      "manifest": {"path": str, "sha256": str} | null},
                            "forget_tasks": [...], "retain_tasks": [...],
                            "ut": {"path": str, "sha256": str} | null,
                            "steps": int, "wall_time_s": float, "command": str | [str],
                            "software": {"python", "torch", "forgetir", "numpy", ...},
                            "seed": int, "created": str                           optional
      model.safetensors   required, with model.json (forgetir.checkpoint.save_model)
      log.csv             required (forgetir.engine: step, loss, lr, other logs, time)
      quality.json        required (forgetir.evaluate.write_results): "rows" label -> task ->
                          {"psnr", "ssim", "n"}; "protocol"; "test_set"
      verify.json         required (forgetir.verify.write_verification of verify_run)
      sweeps.json         optional: [{"param": "lr", "value": 1e-4, "psnr": {task: dB}}, ...]
                          (task keys may also sit beside "param"/"value" directly)
      grids/*.png         optional image grids (:func:`forgetir.figures.write_image_grid`)

Relative ``path`` entries in run.json are looked up in RUN_DIR first, then in the current
directory. Hashes are recomputed where the file can be found, and the report says whether they
match.

Example:
    $ forgetir report runs/demo
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as _dt
import html
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetir.atomic import atomic_write
from forgetir.errors import InputFileError, MissingInputError
from forgetir.figures import (
    ROW_NAMES,
    column,
    loss_figure,
    mia_figure,
    num,
    quality_figure,
    relearn_figure,
    sweep_figure,
    sweep_points,
)
from forgetir.progress import Progress, is_quiet
from forgetir.runs import hash_check, read_json, resolve
from forgetir.verify import key_figures

__all__ = [
    "FILES_DIR",
    "REQUIRED_FILES",
    "add_report_arguments",
    "report_command",
    "software_versions",
    "write_report",
]

FORMAT = "forgetir-report"
VERSION = 1
FILES_DIR = "report_files"
REQUIRED_FILES = ("run.json", "model.safetensors", "model.json", "log.csv", "quality.json")
REQUIRED_FILES += ("verify.json",)
TASK_ORDER = ("dehaze", "derain", "denoise_15", "denoise_25", "denoise_50")
ROW_ORDER = ("input", "BEFORE", "unlearned", "UT")
MAX_LISTED_ENTRIES = 200  # forgotten images listed in HTML/MD; report.json has all


# ------------------------------------------------------------------------------ small helpers


def _json_safe(value: Any) -> Any:
    """Plain JSON: paths and other objects as strings, inf/nan as the strings "inf"/"nan"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _fmt(v: Any, digits: int = 2, signed: bool = False) -> str:
    x = num(v)
    if x is None:
        return "–"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def software_versions() -> dict[str, str]:
    """Versions of what ran: python, torch, forgetir, numpy and the platform.

    Example:
        >>> sorted(software_versions())[:3]
        ['forgetir', 'numpy', 'platform']
    """
    from forgetir import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "forgetir": __version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


# ------------------------------------------------------------------------------ reading


def _read_log(path: Path) -> dict[str, list[float]]:
    """log.csv as numeric columns (step first); empty cells are skipped per column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise InputFileError(f"{path} has no 'step' column (columns: {reader.fieldnames})")
        cols: dict[str, list[tuple[float, float]]] = {c: [] for c in reader.fieldnames}
        for row in reader:
            step = num(row.get("step"))
            if step is None:
                continue
            for c, v in row.items():
                x = num(v)
                if c is not None and x is not None:
                    cols[c].append((step, x))
    return {c: v for c, v in cols.items() if v}  # type: ignore[misc]


def _forget_entries(run_dir: Path, manifest: Any) -> list[dict[str, Any]] | None:
    path = resolve(run_dir, manifest.get("path")) if isinstance(manifest, Mapping) else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["forget"]["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    keep = ("id", "path", "sha256", "task", "class")
    return [{k: e[k] for k in keep if k in e} for e in entries if isinstance(e, Mapping)]


# ------------------------------------------------------------------------------ content model


def _order_tasks(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    seen: list[str] = []
    for m in rows.values():
        seen += [t for t in m if t not in seen]
    return [t for t in TASK_ORDER if t in seen] + [t for t in seen if t not in TASK_ORDER]


def _order_rows(rows: Mapping[str, Any]) -> list[str]:
    return [r for r in ROW_ORDER if r in rows] + [r for r in rows if r not in ROW_ORDER]


def _audit(run_dir: Path, run: Mapping[str, Any], model_meta: Mapping[str, Any]) -> dict[str, Any]:
    from forgetir.checkpoint import sha256_file
    from forgetir.models.external import describe_condition

    split = run.get("split") if isinstance(run.get("split"), Mapping) else {}
    manifest = split.get("manifest")
    entries = _forget_entries(run_dir, manifest)
    weights = run_dir / "model.safetensors"
    actual = sha256_file(weights)
    recorded = model_meta.get("sha256")
    return {
        "forgotten": {
            "split_kind": split.get("kind"),
            "forget": split.get("forget", run.get("forget_tasks")),
            "retain": split.get("retain", run.get("retain_tasks")),
            "forget_tasks": run.get("forget_tasks"),
            "retain_tasks": run.get("retain_tasks"),
            "manifest": hash_check(run_dir, manifest),
            "forget_entries": entries,
            "note": "paths/ids and SHA-256 only; no pixels are stored in this report",
        },
        "parent_checkpoint": hash_check(run_dir, run.get("parent")),
        "ut_checkpoint": hash_check(run_dir, run.get("ut")),
        "unlearned_checkpoint": {
            "path": str(weights),
            "sha256": recorded,
            "check": "match" if actual == recorded else f"MISMATCH (file: {actual})",
            "arch": model_meta.get("arch"),
            "num_parameters": model_meta.get("num_parameters"),
            "conditioning": describe_condition(model_meta.get("model_condition")),
        },
        "method": {
            "name": run.get("method"),
            "target": run.get("target"),
            "hyperparameters": run.get("hyperparameters"),
        },
        "run": {k: run.get(k) for k in ("steps", "wall_time_s", "command", "seed", "created")},
        "software": {"run": run.get("software"), "report": software_versions()},
    }


def _load(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise MissingInputError(f"run directory {run_dir} does not exist")
    missing = [n for n in REQUIRED_FILES if not (run_dir / n).is_file()]
    if missing:
        raise MissingInputError(
            f"run directory {run_dir} lacks {', '.join(missing)} (a report needs "
            f"{', '.join(REQUIRED_FILES)}; see forgetir.report's docstring for the layout)"
        )
    run = read_json(run_dir, "run.json")
    if not isinstance(run, Mapping):
        raise InputFileError(f"{run_dir / 'run.json'} must hold a JSON object")
    lacking = [k for k in ("method", "parent") if k not in run]
    if lacking:
        raise InputFileError(f"{run_dir / 'run.json'} lacks required key(s) {', '.join(lacking)}")
    quality = read_json(run_dir, "quality.json")
    if not isinstance(quality, Mapping) or not isinstance(quality.get("rows"), Mapping):
        raise InputFileError(f"{run_dir / 'quality.json'} must hold an object with 'rows'")
    verify = read_json(run_dir, "verify.json")
    if not isinstance(verify, Mapping):
        raise InputFileError(f"{run_dir / 'verify.json'} must hold a JSON object")
    sweeps = read_json(run_dir, "sweeps.json") if (run_dir / "sweeps.json").is_file() else None
    grids = sorted((run_dir / "grids").glob("*.png")) if (run_dir / "grids").is_dir() else []
    return {
        "run": run,
        "model": read_json(run_dir, "model.json"),
        "log": _read_log(run_dir / "log.csv"),
        "quality": quality,
        "verify": verify,
        "sweeps": sweeps,
        "grids": grids,
    }


# ------------------------------------------------------------------------------ rendering

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:.2em 0 .1em}h2{border-bottom:2px solid #e3e6eb;padding-bottom:4px;
 margin-top:2em}h3{margin-top:1.4em}
p.sub{color:#5a6270;margin-top:0}nav{background:#f0f2f5;padding:8px 12px;border-radius:6px}
nav a{margin-right:14px;color:#2456a6;text-decoration:none}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.92em}
th,td{border:1px solid #d5d9e0;padding:4px 9px;text-align:right;white-space:nowrap}
th{white-space:normal}table.wrap td{white-space:normal}table.wrap td:nth-child(n+3),
table.wrap th:nth-child(n+3){text-align:left}
th{background:#eef1f5}td.l,th.l{text-align:left}
.forget{background:#fdecec}th.forget{background:#f8d4d4}
caption{caption-side:top;text-align:left;color:#5a6270;font-size:.9em;padding-bottom:4px;
 white-space:normal}
figure{margin:12px 0;overflow-x:auto}figure img{max-width:100%;height:auto;
 border:1px solid #e3e6eb}figcaption{color:#5a6270;font-size:.9em}
.kv td:first-child{text-align:left;font-weight:600;background:#f8f9fb}.kv td{text-align:left;
 white-space:normal;word-break:break-all}
.bad{color:#b00020;font-weight:700}.ok{color:#1b7f3b;font-weight:600}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em}
pre{background:#f4f5f7;padding:8px;overflow-x:auto;white-space:pre-wrap}
.scroll{overflow-x:auto}
"""


def _e(x: Any) -> str:
    return html.escape("–" if x is None else str(x), quote=True)


def _m(x: Any) -> str:
    # Markdown renderers pass raw HTML through: escape it there too.
    return html.escape(str(x), quote=False)


class _Doc:
    """Builds the HTML and Markdown bodies side by side, so they never drift apart."""

    def __init__(self, files_dir: Path, run_dir: Path) -> None:
        self.html: list[str] = []
        self.md: list[str] = []
        self.files_dir = files_dir
        self.run_dir = run_dir
        self.figures: dict[str, str] = {}

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        idattr = f' id="{_e(anchor)}"' if anchor else ""
        self.html.append(f"<h{level}{idattr}>{_e(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {_m(text)}\n")

    def para(self, text: str, cls: str | None = None) -> None:
        c = f' class="{_e(cls)}"' if cls else ""
        self.html.append(f"<p{c}>{_e(text)}</p>")
        self.md.append(f"{_m(text)}\n")

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Any]],
        caption: str | None = None,
        forget_cols: Sequence[int] = (),
        left_cols: int = 1,
        cls: str | None = None,
    ) -> None:
        def cell(tag: str, j: int, v: Any) -> str:
            classes = (["l"] if j < left_cols else []) + (["forget"] if j in forget_cols else [])
            if isinstance(v, str) and v.startswith("MISMATCH"):
                classes.append("bad")
            c = f' class="{" ".join(classes)}"' if classes else ""
            return f"<{tag}{c}>{_e(v)}</{tag}>"

        table_class = f' class="{_e(cls)}"' if cls else ""
        t = [f'<div class="scroll"><table{table_class}>']
        if caption:
            t.append(f"<caption>{_e(caption)}</caption>")
        t.append("<tr>" + "".join(cell("th", j, h) for j, h in enumerate(header)) + "</tr>")
        for r in rows:
            t.append("<tr>" + "".join(cell("td", j, v) for j, v in enumerate(r)) + "</tr>")
        t.append("</table></div>")
        self.html.append("".join(t))

        def md(v: Any) -> str:
            return _m("–" if v is None else v).replace("|", "\\|").replace("\n", " ")

        if caption:
            self.md.append(f"{_m(caption)}\n")
        self.md.append("| " + " | ".join(md(h) for h in header) + " |")
        self.md.append("|" + "---|" * len(header))
        self.md += ["| " + " | ".join(md(v) for v in r) + " |" for r in rows]
        self.md.append("")

    def image(self, png: bytes, name: str, caption: str, existing: Path | None = None) -> None:
        """Embed ``png``; Markdown links ``existing`` (a grid in place) or a new file."""
        if existing is None:
            path = atomic_write(self.files_dir / name, png)
        else:
            path = existing
        rel = os.path.relpath(path, self.run_dir).replace(os.sep, "/")
        self.figures[name] = rel
        data = base64.b64encode(png).decode("ascii")
        self.html.append(
            f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
        alt = _m(caption).replace("[", "(").replace("]", ")")
        self.md.append(f"![{alt}]({rel})\n")

    def pre(self, text: str) -> None:
        self.html.append(f"<pre>{_e(text)}</pre>")
        self.md.append(f"```\n{text}\n```\n")

    def details(self, summary: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.html.append(f"<details><summary>{_e(summary)}</summary>")
        self.md.append(f"{_m(summary)}:\n")
        self.table(header, rows, left_cols=len(header))
        self.html.append("</details>")


def _quality_section(doc: _Doc, quality: Mapping[str, Any], forget: set) -> list[str]:
    from forgetir.metrics import describe_protocol

    rows = quality["rows"]
    tasks = _order_tasks(rows)
    protocol = quality.get("protocol", "promptir")
    try:
        proto_text = quality.get("protocol_description") or describe_protocol(protocol)
    except (KeyError, ValueError):
        proto_text = str(protocol)
    source = quality.get("test_set") or quality.get("test_source") or "not recorded"
    header = ["model"] + [column(t) + (" (forget)" if t in forget else "") for t in tasks]
    body = []
    for label in _order_rows(rows):
        cells = []
        for t in tasks:
            m = rows[label].get(t) or {}
            cells.append(f"{_fmt(m.get('psnr'))}/{_fmt(m.get('ssim'), 3)}" if m else "–")
        body.append([ROW_NAMES.get(label, label), *cells])
    forget_cols = [j + 1 for j, t in enumerate(tasks) if t in forget]
    caption = f"PSNR (dB) / SSIM per task. Protocol: {proto_text}. Test set: {source}."
    doc.table(header, body, caption, forget_cols)
    doc.image(quality_figure(rows, tasks, forget), "quality.png", "PSNR per task and model")
    return tasks


def _expert_usage_section(doc: _Doc, usage: Mapping[str, Any], forget: set) -> None:
    """Mixture-of-experts routing: which experts each task's images go to, per model row."""
    doc.heading(2, "Expert usage (mixture-of-experts routing)", "experts")
    rows = []
    for model, per_set in usage.items():
        for name, levels in per_set.items():
            shares = [
                " ".join(f"e{i}:{100 * f:.0f}%" for i, f in enumerate(level) if f > 0)
                for level in levels
            ]
            rows.append([model, name + (" (forget)" if name in forget else ""), *shares])
    width = max(len(r) for r in rows) - 2
    doc.table(
        ["model", "test set", *[f"decoder level {i + 1}" for i in range(width)]],
        rows,
        "Share of routing choices (image x block x top-k slot) per expert, decoder levels "
        "from the bottleneck up; e0 is the cheapest expert.",
        left_cols=2,
    )


def _verification_section(doc: _Doc, v: Mapping[str, Any], forget: set) -> None:
    doc.heading(2, "Verification (relative to UT, the model retrained without the data)", "verify")
    doc.para(
        f"Protocol: {v.get('protocol_description') or v.get('protocol')}. "
        f"Test set: {v.get('test_set')}. Forget tasks: {', '.join(v.get('forget_tasks') or [])}; "
        f"retain tasks: {', '.join(v.get('retain_tasks') or []) or 'none'}."
    )
    g = (v.get("gaps") or {}).get("tasks") or {}
    doc.heading(3, "Gaps to UT and to BEFORE")
    if g:
        rows = [
            [
                column(t),
                r.get("role"),
                _fmt(r.get("psnr")),
                _fmt(r.get("psnr_gap_to_ut"), signed=True),
                _fmt(r.get("psnr_gap_to_before"), signed=True),
                _fmt(r.get("ssim_gap_to_ut"), 3, True),
                _fmt(r.get("ssim_gap_to_before"), 3, True),
            ]
            for t, r in g.items()
        ]
        doc.table(
            [
                "task",
                "role",
                "unlearned PSNR",
                "Δ PSNR vs UT",
                "Δ PSNR vs BEFORE",
                "Δ SSIM vs UT",
                "Δ SSIM vs BEFORE",
            ],
            rows,
            "Unlearned minus reference. Ideal: 0 vs UT on forget tasks, 0 vs BEFORE on retain "
            "tasks (dB / SSIM).",
            left_cols=2,
        )
    else:
        doc.para("Not measured.")
    og = v.get("output_gap") or {}
    doc.heading(3, "Output gap")
    if og.get("value") is not None:
        doc.para(
            f"{og.get('metric')}: {_fmt(og.get('value'), 4)} on {og.get('data')} "
            f"(BEFORE vs UT for scale: {_fmt(og.get('before_value'), 4)}; 0 is ideal)."
        )
    else:
        doc.para("Not measured: no UT model was given.")

    rel = v.get("relearn") or {}
    doc.heading(3, "Relearning")
    if rel.get("runs"):
        rows = []
        for label, r in rel["runs"].items():
            rows.append(
                [
                    label,
                    r.get("steps_run"),
                    r.get("lr"),
                    _fmt(r.get("start_psnr")),
                    _fmt(r.get("final_psnr")),
                    _fmt(r.get("recovered_db"), signed=True),
                    _fmt(r.get("recovered_fraction_of_before_gap")),
                ]
            )
        doc.table(
            [
                "model",
                "steps",
                "lr",
                "start PSNR",
                "final PSNR",
                "recovered dB",
                "fraction of BEFORE gap",
            ],
            rows,
            f"Fine-tuning a copy on {rel.get('train_data')}; measured on {rel.get('eval_data')}. "
            f"BEFORE's forget PSNR: {_fmt(rel.get('before_forget_psnr'))} dB.",
        )
    else:
        doc.para("Not measured: no relearning samples were given.")
    ain = v.get("anamnesis") or {}
    doc.heading(3, "Anamnesis index (AIN)")
    if ain:
        kind = ain.get("ain_kind")
        sym = {"exact": "=", "lower_bound": "≥", "upper_bound": "≤"}.get(kind, "")
        value = f"AIN {sym} {_fmt(ain.get('ain'), 3)}" if sym else "AIN undefined"

        def steps(s: Any) -> str:
            return str(s) if s is not None else f"not reached within {ain.get('max_steps')}"

        doc.table(
            ["AIN", "kind", "steps unlearned", "steps UT", "BEFORE L1", "target L1", "tol", "lr"],
            [
                [
                    value,
                    kind,
                    steps(ain.get("steps_unlearned")),
                    steps(ain.get("steps_ut")),
                    _fmt(ain.get("before_l1"), 4),
                    _fmt(ain.get("target_l1"), 4),
                    ain.get("tol"),
                    ain.get("lr"),
                ]
            ],
            f"{ain.get('metric')}. {ain.get('note')}.",
        )
        doc.para(f"Verdict: {ain.get('verdict')}. AIN ≈ 1 is ideal; AIN ≪ 1 means hidden.")
    else:
        doc.para("Not measured (needs UT and relearning samples).")
    fig = relearn_figure(v)
    if fig is not None:
        doc.image(fig, "relearn.png", "Relearning curves (forget PSNR) and AIN curves (forget L1)")

    mia = v.get("membership") or {}
    doc.heading(3, "Membership inference")
    if mia.get("models"):
        rows = [
            [
                label,
                _fmt(r.get("attack_accuracy"), 3),
                _fmt(r.get("attack_auc"), 3),
                _fmt(r.get("forgotten_member_rate"), 3),
                _fmt(r.get("nonmember_member_rate"), 3),
                _fmt(r.get("forgotten_vs_nonmembers_auc"), 3),
                _fmt(r.get("member_loss_mean"), 4),
                _fmt(r.get("nonmember_loss_mean"), 4),
                _fmt(r.get("forgotten_loss_mean"), 4),
            ]
            for label, r in mia["models"].items()
        ]
        doc.table(
            [
                "model",
                "attack acc.",
                "attack AUC",
                "forgotten → member",
                "non-members → member",
                "AUC forgotten vs non-members",
                "loss members",
                "loss non-members",
                "loss forgotten",
            ],
            rows,
            f"{next(iter(mia['models'].values())).get('metric')}. Data: {mia.get('data')}. "
            "Forgotten images should look like non-members, as they do for UT.",
        )
        fig = mia_figure(v)
        if fig is not None:
            doc.image(fig, "membership.png", "Per-image losses seen by the membership attack")
    else:
        doc.para("Not measured (membership inference applies to instance forgetting).")

    c = v.get("cost") or {}
    doc.heading(3, "Cost")
    if c:
        doc.table(
            [
                "unlearn steps",
                "unlearn s",
                "train steps",
                "train s",
                "step fraction",
                "time fraction",
                "sample fraction",
            ],
            [
                [
                    c.get("unlearn_steps"),
                    _fmt(c.get("unlearn_seconds"), 1),
                    c.get("train_steps"),
                    _fmt(c.get("train_seconds"), 1),
                    _fmt(c.get("step_fraction"), 4),
                    _fmt(c.get("time_fraction"), 4),
                    _fmt(c.get("sample_fraction"), 4),
                ]
            ],
            "Unlearning relative to training from scratch (fractions).",
        )
    else:
        doc.para("Not recorded.")


def _audit_section(doc: _Doc, audit: Mapping[str, Any], key: list[dict[str, Any]]) -> None:
    doc.heading(2, "Audit manifest", "audit")
    f = audit["forgotten"]

    def hashed(rec: Any) -> list[list[Any]]:
        if not rec:
            return [["path", "not recorded"]]
        return [
            ["path", rec.get("path")],
            ["sha256", rec.get("sha256")],
            ["check", rec.get("check")],
        ]

    def j(v: Any) -> str:
        if v is None:
            return "not recorded"
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    rows = [
        ["split kind", f.get("split_kind")],
        ["forgotten", j(f.get("forget"))],
        ["retained", j(f.get("retain"))],
        ["forget tasks", j(f.get("forget_tasks"))],
        ["retain tasks", j(f.get("retain_tasks"))],
        *[[f"split manifest {k}", v] for k, v in hashed(f.get("manifest"))],
        *[[f"parent (BEFORE) {k}", v] for k, v in hashed(audit.get("parent_checkpoint"))],
        *[[f"UT checkpoint {k}", v] for k, v in hashed(audit.get("ut_checkpoint"))],
        *[[f"unlearned {k}", v] for k, v in hashed(audit.get("unlearned_checkpoint"))],
        ["model conditioning", (audit.get("unlearned_checkpoint") or {}).get("conditioning")],
        ["method", audit["method"].get("name")],
        ["target", audit["method"].get("target")],
        ["hyperparameters", j(audit["method"].get("hyperparameters"))],
        *[[f"run {k}", j(v)] for k, v in audit["run"].items()],
        ["software (run)", j(audit["software"].get("run") or "not recorded in run.json")],
        ["software (report)", j(audit["software"].get("report"))],
        ["note", f.get("note")],
    ]
    doc.table(["field", "value"], rows, left_cols=2, cls="kv")
    entries = f.get("forget_entries")
    if entries:
        cols = list(dict.fromkeys(k for e in entries for k in e))
        shown = entries[:MAX_LISTED_ENTRIES]
        more = len(entries) - len(shown)
        summary = f"{len(entries)} forgotten training images (ids/paths and SHA-256)"
        summary += f"; first {len(shown)} listed, all in report.json" if more else ""
        doc.details(summary, cols, [[e.get(c) for c in cols] for e in shown])
    doc.heading(3, "Every verification figure")
    doc.table(
        ["figure", "value", "metric", "data"],
        [
            [
                k["figure"],
                _fmt(k["value"], 4) if isinstance(k["value"], float) else k["value"],
                k["metric"],
                k["data"],
            ]
            for k in key
        ],
        left_cols=1,
        cls="wrap",
    )


def write_report(run_dir: str | Path, quiet: bool | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` (+ ``report_files/*.png``) and ``report.json`` for
    the run directory ``run_dir`` (layout in the module docstring); return their paths under
    the keys ``html``, ``md``, ``json`` and ``files``. Progress per section (the figures take
    the time) shows after 2 s unless ``quiet`` (None: see :mod:`forgetir.progress`).

    Example:
        >>> import tempfile
        >>> try:
        ...     write_report(tempfile.mkdtemp())
        ... except FileNotFoundError as e:
        ...     "run.json" in str(e)
        True
    """
    run_dir = Path(run_dir)
    data = _load(run_dir)
    with Progress(6, 0, not is_quiet(quiet), "report", delay=None, unit="sections") as bar:
        return _write_report(run_dir, data, bar)


def _write_report(run_dir: Path, data: dict[str, Any], bar: Progress) -> dict[str, Path]:
    """The body of :func:`write_report`; ``bar`` advances once per section."""
    run, quality, verify = data["run"], data["quality"], data["verify"]
    forget_tasks = list(run.get("forget_tasks") or verify.get("forget_tasks") or [])
    forget = set(forget_tasks)
    files_dir = run_dir / FILES_DIR
    doc = _Doc(files_dir, run_dir)

    method = str(run.get("method"))
    target = ", ".join(map(str, forget_tasks)) or str((run.get("split") or {}).get("forget"))
    title = f"forgetir report: {method}, forgetting {target}"
    doc.heading(1, title)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    doc.para(f"Run directory: {run_dir.resolve()}. Generated {generated}.", "sub")
    sections = [("quality", "Quality"), ("grids", "Image grids"), ("curves", "Training curves")]
    if data["sweeps"] is not None:
        sections.append(("sweeps", "Sweeps"))
    sections += [("verify", "Verification"), ("audit", "Audit manifest")]
    doc.html.append(
        "<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in sections) + "</nav>"
    )

    doc.heading(2, "Quality: degraded input, BEFORE, unlearned, UT", "quality")
    _quality_section(doc, quality, forget)
    bar.update(1, "quality")

    doc.heading(2, "Image grids", "grids")
    if data["grids"]:
        for g in data["grids"]:
            doc.image(g.read_bytes(), f"grid:{g.name}", f"{g.stem}", existing=g)
    else:
        doc.para("No grids/ in the run directory.")
    bar.update(2, "grids")

    doc.heading(2, "Training curves", "curves")
    loss_png = loss_figure(data["log"])
    if loss_png is not None:
        doc.image(loss_png, "loss.png", "log.csv: loss terms and logged values per step")
    else:
        doc.para("log.csv has no logged values.")
    bar.update(3, "curves")

    if data["sweeps"] is not None:
        doc.heading(2, "Sweeps", "sweeps")
        points = sweep_points(data["sweeps"])
        if points:
            doc.image(sweep_figure(points, forget), "sweeps.png", "PSNR per swept value")
            for param, pts in points.items():
                tasks = list(dict.fromkeys(t for _, s in pts for t in s))
                doc.table(
                    [param, *[column(t) + (" (forget)" if t in forget else "") for t in tasks]],
                    [[v, *[_fmt(s.get(t)) for t in tasks]] for v, s in pts],
                    f"Sweep of {param}: PSNR (dB) per task.",
                )

    bar.update(4, "sweeps")
    if run.get("expert_usage"):
        _expert_usage_section(doc, run["expert_usage"], forget)
    _verification_section(doc, verify, forget)
    bar.update(5, "verification")
    key = key_figures(verify)
    audit = _audit(run_dir, run, data["model"])
    _audit_section(doc, audit, key)

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>\n"
        + "\n".join(doc.html)
        + "\n</main></body></html>\n"
    )
    report = {
        "format": FORMAT,
        "version": VERSION,
        "generated": generated,
        "run_dir": str(run_dir.resolve()),
        "title": title,
        "audit": {**audit, "key_figures": key},
        "quality": quality,
        "verification": verify,
        "sweeps": data["sweeps"],
        "training_log": {
            "columns": list(data["log"]),
            "last": {c: v[-1][1] for c, v in data["log"].items()},
        },
        "figures": doc.figures,
    }
    paths = {
        "html": atomic_write(run_dir / "report.html", page.encode("utf-8")),
        "md": atomic_write(run_dir / "report.md", "\n".join(doc.md).encode("utf-8")),
        "json": atomic_write(
            run_dir / "report.json",
            (json.dumps(_json_safe(report), indent=2, ensure_ascii=False) + "\n").encode(),
        ),
        "files": files_dir,
    }
    bar.update(6, "written")
    return paths


# ------------------------------------------------------------------------------ command line


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forgetir report``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (see forgetir.report)")


def report_command(args: argparse.Namespace) -> int:
    """``forgetir report RUN_DIR``: write the HTML, Markdown and JSON reports; print paths."""
    paths = write_report(args.run_dir)
    for key in ("html", "md", "json"):
        print(f"wrote {paths[key]}")
    return 0
