"""Forward+backward time and peak memory per 1x3xSxS image for every registered model.

Time: median (and minimum) wall time of ``reps`` forward+backward steps (mean-output loss, grads
on every parameter) after one warm-up step, torch threads = CPU cores unless ``--threads``; the
``cpu s`` columns give the median process CPU time per step (all threads), which moves less than
wall time when other processes compete for the cores. ``speed-up`` is plain / fast, of the
medians and of the minima.
With ``--plain`` the plain reference computation (the published op sequence, see
``forgetir.models.layers.set_reference_mode``) is timed in the same process, its steps
interleaved with the fast path's so that load from other processes hits both alike, and the
fast/plain speed ratio is printed.

Memory: peak resident-set growth during the first (warm-up) step of a fresh process, read from
the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``, reset first through
``/proc/self/clear_refs``) minus the resident size before the step. Each model and path is
measured in its own subprocess because freed memory stays in the allocator's arenas. Where
``/proc`` is missing (not Linux) the column shows ``ru_maxrss`` growth instead, marked ``*``.

With ``--runtime`` the fast path also runs as forgetir's command line runs it (glibc told to
keep freed memory, ``forgetir.runtime.memory``), in its own process, against the plain path
in another
process with the default allocator, steps alternated between the two processes.

Example::

    PYTHONPATH=src python benchmarks/bench_models.py --models promptir-tiny --reps 3 --plain
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(name: str, plain: bool, compile_: bool) -> torch.nn.Module:
    from forgetir.models import create_model
    from forgetir.models.layers import set_reference_mode

    torch.manual_seed(0)
    model = set_reference_mode(create_model(name), plain)
    # The plain path is the uncompiled reference by definition.
    return torch.compile(model) if compile_ and not plain else model


def _step(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).mean().backward()


def _input(size: int) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))


def worker_memory(name: str, plain: bool, size: int, compile_: bool) -> dict:
    """Peak RSS growth (MiB) of one forward+backward step in this fresh process."""
    model = _build(name, plain, compile_)
    x = _input(size)
    exact = _reset_peak()
    before = _rss_kib("VmRSS") if exact else None
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _step(model, x)
    if exact and before is not None:
        peak = _rss_kib("VmHWM") or 0
        return {"mib": (peak - before) / 1024, "exact": True}
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max_before
    return {"mib": grown / 1024, "exact": False}


def worker_time(name: str, plain: bool, size: int, reps: int, compile_: bool) -> dict:
    """Interleaved fast (and plain) step times in this process."""
    paths = {"fast": _build(name, False, False)}
    if plain:
        paths["plain"] = _build(name, True, False)
        paths["plain"].load_state_dict(paths["fast"].state_dict())
    if compile_:
        paths["fast"] = torch.compile(paths["fast"])
    x = _input(size)
    times: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    warm: dict[str, float] = {}
    for key, model in paths.items():
        t = time.perf_counter()
        _step(model, x)  # warm-up (and compilation, if asked)
        warm[key] = time.perf_counter() - t
    for _ in range(reps):
        for key, model in paths.items():
            t, c = time.perf_counter(), time.process_time()
            _step(model, x)
            times[key].append(time.perf_counter() - t)
            cpu[key].append(time.process_time() - c)
    params = sum(p.numel() for p in paths["fast"].parameters())
    return {"params": params, "times": times, "cpu": cpu, "warmup": warm}


def stepper(name: str, plain: bool, size: int, retain: bool) -> None:
    """A persistent worker: one timed step per ``step`` line on stdin, its times on stdout."""
    if retain:
        from forgetir.runtime.memory import retain_freed_memory

        retain_freed_memory(True)
    model = _build(name, plain, False)
    x = _input(size)
    _step(model, x)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        t, c = time.perf_counter(), time.process_time()
        _step(model, x)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


def runtime_pair(args: argparse.Namespace, name: str) -> dict[str, dict[str, list[float]]]:
    """Fast path as forgetir's command line runs it (freed memory retained, see
    ``forgetir.runtime.memory``) against the plain path with the C library's default allocator, each
    in its own process (the allocator setting is process-wide), steps alternated between them.
    """
    procs = {}
    for key, plain, retain in (("fast", False, True), ("plain", True, False)):
        job = {"name": name, "plain": plain, "size": args.size, "retain": retain}
        cmd = [sys.executable, __file__, "--_stepper", json.dumps(job)]
        cmd += ["--threads", str(args.threads)]
        procs[key] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in procs}
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for _ in range(args.reps):
            for key, proc in procs.items():
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("step\n")
                proc.stdin.flush()
                res = json.loads(proc.stdout.readline())
                out[key]["wall"].append(res["wall"])
                out[key]["cpu"].append(res["cpu"])
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait()
    return out


def _run_worker(args: argparse.Namespace, payload: dict) -> dict:
    cmd = [sys.executable, __file__, "--_worker", json.dumps(payload), "--threads"]
    cmd.append(str(args.threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    from forgetir.models import list_models

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--reps", type=int, default=3, help="timed steps per path (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--plain", action="store_true", help="also time the plain reference path")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument(
        "--runtime",
        action="store_true",
        help="also time the fast path with forgetir's allocator setting against the plain path "
        "with the default allocator (two processes, steps alternated)",
    )
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    p.add_argument("--_stepper", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args._stepper:
        stepper(**json.loads(args._stepper))
        return

    if args._worker:
        job = json.loads(args._worker)
        kind = job.pop("kind")
        result = worker_memory(**job) if kind == "memory" else worker_time(**job)
        print(json.dumps(result))
        return

    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        p.error(f"unknown model(s) {unknown}; valid choices: {', '.join(list_models())}")
    print(
        f"torch {torch.__version__}, {args.threads} threads, 1x3x{args.size}x{args.size}, "
        f"forward+backward, {args.reps} reps (+1 warm-up), load avg {os.getloadavg()[0]:.1f}"
    )
    head = f"{'model':14s} {'params':>11s} {'fast s':>7s} {'(min)':>7s} {'cpu s':>7s}"
    if args.plain:
        head += f" {'plain s':>7s} {'(min)':>7s} {'cpu s':>7s} {'speed-up':>8s} {'(min)':>6s}"
    head += f" {'peak MiB':>9s}"
    if args.plain:
        head += f" {'plain MiB':>9s}"
    print(head)
    med = statistics.median
    for name in names:
        base = {"name": name, "size": args.size, "compile_": args.compile}
        res = _run_worker(args, {"kind": "time", **base, "plain": args.plain, "reps": args.reps})
        fast, fast_cpu = res["times"]["fast"], res["cpu"]["fast"]
        row = f"{name:14s} {res['params']:11,d} {med(fast):7.2f} {min(fast):7.2f}"
        row += f" {med(fast_cpu):7.2f}"
        if args.plain:
            plain, plain_cpu = res["times"]["plain"], res["cpu"]["plain"]
            row += f" {med(plain):7.2f} {min(plain):7.2f} {med(plain_cpu):7.2f}"
            row += f" {med(plain) / med(fast):7.2f}x {min(plain) / min(fast):5.2f}x"
        for plain_path in [False, True] if args.plain else [False]:
            if args.no_memory:
                row += f" {'-':>9s}"
                continue
            mem = _run_worker(args, {"kind": "memory", **base, "plain": plain_path})
            row += f" {mem['mib']:8.0f}{'' if mem['exact'] else '*'}"
        print(row, flush=True)
        if args.runtime:
            pair = runtime_pair(args, name)
            f_cpu, p_cpu = pair["fast"]["cpu"], pair["plain"]["cpu"]
            f_wall, p_wall = pair["fast"]["wall"], pair["plain"]["wall"]
            print(
                f"{'':14s} runtime: fast+retained memory {med(f_wall):.2f} s ({med(f_cpu):.2f} "
                f"cpu s) vs plain, default allocator {med(p_wall):.2f} s ({med(p_cpu):.2f} cpu s):"
                f" {med(p_wall) / med(f_wall):.2f}x wall, {med(p_cpu) / med(f_cpu):.2f}x cpu",
                flush=True,
            )


if __name__ == "__main__":
    main()
