"""Bench rows from phone-class CPUs: a Raspberry Pi or any aarch64 Linux over SSH
(:mod:`remote_ssh`), an Android phone over adb (:mod:`adb`), and emulated Cortex-A cores
(:mod:`emulate`). Each row is one .tflite file on one device, with ``device`` set.

- SSH rows: latency percentiles at each thread count measured on the device, Dice and agreement
  with PyTorch from the device's own outputs, and ``vs_host``: parity with the same file run on
  this machine.
- adb rows: latency from LiteRT's ``benchmark_model`` (random inputs, so no Dice, no parity).
- Emulated rows: ``vs_host`` (parity with this x86 machine) and aarch64 instructions per inference
  with their opcode classes; never a latency (emulation speed says nothing about the core's).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def validate(remote: str | None = None, adb: str | None = None, benchmark_model: str | Path | None = None,
             emulate: tuple[str, ...] = ()) -> None:
    """Cheap checks of the device arguments, before minutes of host measurements are spent."""
    if remote:
        from egeunet.benchmarks.remote_ssh import SSHTarget

        SSHTarget.parse(remote)
    if adb is not None and not benchmark_model:
        raise ValueError("--adb needs --benchmark-model PATH: LiteRT's android_aarch64_benchmark_model binary "
                         "(see README, 'Benchmark on your phone or Raspberry Pi')")
    if benchmark_model and adb is None:
        raise ValueError("--benchmark-model is for --adb; add --adb [SERIAL]")
    if benchmark_model and not Path(benchmark_model).is_file():
        raise ValueError(f"--benchmark-model {benchmark_model}: no such file")
    if adb is not None:
        from egeunet.benchmarks.adb import Adb

        # adb on PATH and the phone attached and authorised: a RuntimeError saying what is wrong
        # now, not after the host rows (and not a wait for ever on `adb wait-for-device`)
        Adb(adb or None).check_attached()
    if emulate:
        from egeunet.benchmarks import emulate as em

        unknown = [c for c in emulate if c not in em.CORES]
        if unknown:
            raise ValueError(f"--emulate {unknown[0]}: unknown core; choose from {', '.join(em.CORES)}")
        lab = em.Lab()
        for cpu in emulate:
            em.check_cpu(cpu, lab.qemu)


def device_rows(tflites: list[tuple[Path, dict]], split, torch_masks, threads: tuple[int, ...], runs: int,
                warmup: int, quick: bool, remote: str | None = None, remote_python: str = "python3",
                ssh_args: tuple[str, ...] = (), adb: str | None = None, benchmark_model: str | Path | None = None,
                emulate: tuple[str, ...] = (), device_images: int | None = None) -> list:
    from egeunet.benchmarks.bench import Row, _op_count
    from egeunet.export.common import size_of

    rows = []

    def row(path: Path, man: dict, device: str, **kw) -> Row:
        # bytes of the file sent to the device (which may have changed since its manifest was written)
        return Row("tflite", man["precision"], str(path), size_bytes=size_of(path), ops=_op_count(man),
                   device=device, **kw)

    if remote:
        n = device_images or (16 if quick else 64)
        rows += _ssh_rows(tflites, split, torch_masks, threads, runs, warmup, n, remote, remote_python, ssh_args, row)
    if adb is not None:
        rows += _adb_rows(tflites, threads, runs, warmup, adb, benchmark_model, row)
    for cpu in emulate:
        n = min(device_images or (4 if quick else 8), len(split.images))  # --quick loads 16 test images
        rows += _emulated_rows(tflites, split, torch_masks, n, cpu, row)
    return rows


def _fail(r, e: Exception):
    r.status, r.reason = "failed", (str(e).strip().splitlines() or [e.__class__.__name__])[0]
    return r


def _ssh_rows(tflites, split, torch_masks, threads, runs, warmup, n, remote, python, ssh_args, row):
    from egeunet.benchmarks import device_common as dc
    from egeunet.benchmarks.remote_ssh import SSHTarget, measure

    target = SSHTarget.parse(remote)
    images, masks, tmasks = split.images[:n], split.masks[:n], torch_masks[:n]
    preps, failed = {}, {}
    for path, _ in tflites:  # a file this machine cannot open is a failed row, not the end of the run
        try:
            preps[path] = dc.prepare(path, images)
        except (RuntimeError, ValueError, OSError, ImportError) as e:
            failed[path] = e
    try:
        results = dict(zip(preps, measure(target, list(preps.values()), threads, runs, warmup, python,
                                          tuple(ssh_args)))) if preps else {}
    except (RuntimeError, OSError, ValueError) as e:
        failed.update({path: e for path in preps})
        results = {}
    rows = []
    for path, man in tflites:
        res = results.get(path) or {"error": ""}
        if path in failed or "error" in res:
            rows.append(_fail(row(path, man, str(target)), failed.get(path) or RuntimeError(res["error"])))
            continue
        prep = preps[path]
        r = row(path, man, f"{target} ({res['device'].get('cpu', res['device'].get('machine', '?'))})",
                n_images=len(images), latency_ms=res["latency_ms"])
        try:
            for k, v in dc.scores(res["outputs"], prep.runtime, masks, tmasks).items():
                setattr(r, k, v)
            r.vs_host = dc.parity(res["outputs"], dc.run_here(prep), prep.runtime)
            r.fps = 1000.0 / r.latency_ms[str(threads[0])]["p50"]
        except (RuntimeError, ValueError) as e:
            _fail(r, e)
        rows.append(r)
    return rows


def _adb_rows(tflites, threads, runs, warmup, serial, benchmark_model, row):
    from egeunet.benchmarks.adb import measure

    try:
        res = measure([p for p, _ in tflites], benchmark_model, serial or None, threads, warmup, runs)
    except (RuntimeError, OSError, ValueError) as e:
        return [_fail(row(p, m, f"adb {serial or ''}".strip()), e) for p, m in tflites]
    rows = []
    for path, man in tflites:
        r = row(path, man, f"{res['device']} cores {res['mask'] or 'not pinned (cpufreq unreadable)'}",
                reason="latency only: benchmark_model feeds random inputs (no Dice, no parity)")
        if path.name in res.get("errors", {}):
            rows.append(_fail(r, RuntimeError(res["errors"][path.name])))
            continue
        r.latency_ms = res["results"][path.name]
        first = r.latency_ms[str(threads[0])]
        r.fps = 1000.0 / first.get("p50", first["avg"])
        rows.append(r)
    return rows


def _emulated_rows(tflites, split, torch_masks, n, cpu, row):
    from egeunet.benchmarks import device_common as dc
    from egeunet.benchmarks import emulate as em

    rows = []
    lab = em.Lab()
    for path, man in tflites:
        r = row(path, man, f"qemu {cpu} ({em.CORES[cpu].where}), 1 thread", n_images=n)
        try:
            prep = dc.prepare(path, split.images[:n])
            res = em.measure(cpu, prep, lab)
            for k, v in dc.scores(res["outputs"], prep.runtime, split.masks[:n], torch_masks[:n]).items():
                setattr(r, k, v)
            r.vs_host = res["vs_host"]
            per = res["counts"]["per_inference"]
            r.instructions_per_inference = per["total"]
            r.insn_classes = {k: v for k, v in per.items() if k != "total"}
            r.reason = f"qemu {res['qemu']}; instruction count is a cost proxy (no caches, no IPC), not a time"
        except (RuntimeError, ValueError, OSError) as e:
            _fail(r, e)
        rows.append(r)
    return rows
