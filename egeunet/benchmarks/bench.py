"""``egeunet-bench``: one row per model file — size, op count, Dice against the ground truth,
agreement with PyTorch fp32, and latency percentiles at several thread counts.

Accuracy runs in this process through :mod:`egeunet.runtimes` (the same code users call);
latency runs in a child process per (file, thread count) (see ``latency_worker``), while
this process samples the machine's load and warns when the CPU was busy. Every ratio in a
report comes from one run.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from egeunet.export.common import FORMATS, sha256_of, size_of

log = logging.getLogger(__name__)


@dataclass
class Row:
    format: str
    precision: str
    path: str | None
    status: str = "ok"  # ok / parity-failed / failed
    reason: str = ""
    size_bytes: int | None = None
    ops: int | None = None
    dice_pooled: float | None = None
    dice_per_image: float | None = None
    iou_vs_torch: float | None = None
    dice_vs_torch: float | None = None
    latency_ms: dict = field(default_factory=dict)
    fps: float | None = None  # 1000 / p50 at the first thread count asked for (the table's "FPS @t")
    busy_cpu_percent: float | None = None
    # Rows measured on another device (``--remote``, ``--adb``, ``--emulate``); None = this machine.
    device: str | None = None
    n_images: int | None = None  # test images behind a device row's Dice (fewer than the host's)
    vs_host: dict | None = None  # parity with the same file run on this machine (max |Δ|, mask IoU)
    instructions_per_inference: float | None = None  # emulated rows: aarch64 instructions (a proxy, no time)
    insn_classes: dict = field(default_factory=dict)  # per inference: sdot, udot, fmla, smlal, ...


# rows in the format table's order, PyTorch first
_ORDER = {k: i for i, k in enumerate(["torch-fp32", *(f.key for f in FORMATS)])}


def discover(exports: Path, weights: Path | None = None) -> list[tuple[str, str, Path | None, dict]]:
    """(format, precision, path, manifest) for PyTorch (``weights``, default the shipped
    ones: path None) and every artifact under ``exports``."""
    from egeunet.model.checkpoint import PRETRAINED
    from egeunet.runtimes.base import load_manifest_file

    found = [("torch", "fp32", weights, {"bytes": Path(weights or PRETRAINED).stat().st_size})]
    for man_path in sorted(exports.glob("*/manifest.json")):
        man = load_manifest_file(man_path)  # a malformed one: an error naming it, not a KeyError
        # a .tflite made by the comparison route is its own row: "tflite/onnx2tf"
        fmt = man["target"] + ("/onnx2tf" if man.get("converter") == "onnx2tf" else "")
        found.append((fmt, man["precision"], man_path.parent / man["file"], man))
    return found


def format_names() -> set[str]:
    """What ``--formats`` accepts: torch, each target, each target-precision key, and the same
    for the onnx2tf comparison route (``tflite/onnx2tf``)."""
    names = {"torch", "torch-fp32", "tflite/onnx2tf"}
    for f in FORMATS:
        names |= {f.target, f.key}
        if f.target == "tflite":
            names.add(f"tflite/onnx2tf-{f.precision}")
    return names


def check_inputs(exports: Path, formats: list[str] | None, threads: tuple[int, ...], make_missing: bool) -> None:
    """Refuse before any work what would otherwise give an empty or silently shorter table."""
    unknown = sorted(set(formats or ()) - format_names())
    if unknown:
        raise ValueError(f"--formats: unknown {', '.join(unknown)} (choose from: torch, "
                         f"{', '.join(sorted(format_names() - {'torch'}))})")
    if not threads or min(threads) < 1:
        raise ValueError(f"--threads must be >= 1 (got {' '.join(map(str, threads))})")
    twice = sorted({t for t in threads if threads.count(t) > 1})
    if twice:  # it would be timed twice, in two columns of the same heading holding one figure
        raise ValueError(f"--threads {' '.join(map(str, threads))}: {', '.join(map(str, twice))} given twice")
    only_torch = bool(formats) and set(formats) <= {"torch", "torch-fp32"}  # then no exported file is read
    if not make_missing and not only_torch and not exports.is_dir():
        raise ValueError(f"--exports {exports}: no such folder (with --no-export only what is already there "
                         "is measured)")
    # A name that selects no file would just be absent from the table (an empty table, exit 0, for
    # --formats onnx over a folder without one). What can be measured: the files there, plus the
    # default variants the bench exports itself (never the onnx2tf route's files).
    found = [(f, p) for f, p, _, _ in discover(exports)[1:]] if exports.is_dir() else []
    if make_missing:
        found += [(f.target, f.precision) for f in FORMATS]
    nothing = [n for n in formats or () if n not in ("torch", "torch-fp32")
               and not any(_wanted(f, p, [n]) for f, p in found)]
    if nothing:
        raise ValueError(f"--formats {' '.join(nothing)}: nothing in --exports {exports} to measure"
                         + ("" if make_missing else " (with --no-export only what is already there is measured)"))


def _wanted(fmt: str, precision: str, formats: list[str] | None) -> bool:
    target = fmt.split("/")[0]
    return not formats or any(f in formats for f in (fmt, target, f"{fmt}-{precision}", f"{target}-{precision}"))


def ensure_exports(exports: Path, formats: list[str] | None, data, weights: Path | None = None) -> dict[str, str]:
    """Make every default variant of ``egeunet-export`` that ``exports`` lacks, from ``weights``
    (default: the shipped weights).

    Returns {format key: one-line reason} for variants whose export failed, so that they
    still get a row (status ``failed``) instead of silently vanishing from the table.
    """
    from egeunet.export import export

    failures = {}
    for fmt in FORMATS:
        if not _wanted(fmt.target, fmt.precision, formats) or _exported(exports / fmt.key):
            continue
        log.info("[bench] %s is not in %s: exporting it from %s", fmt.key, exports, weights or "the shipped weights")
        try:
            export(fmt.target, fmt.precision, weights=weights, out=exports / fmt.key, data=data)
        except Exception as e:  # ImportError (extras missing), ExportError, ParityError: report, go on
            failures[fmt.key] = f"export failed: {(str(e).strip().splitlines() or [e.__class__.__name__])[0]}"
    return failures


def _exported(folder: Path) -> bool:
    """A manifest and the file it names (a manifest left alone is exported again, not measured as
    missing); a manifest that cannot be read counts as there, for discover() to name."""
    from egeunet.runtimes.base import load_manifest_file

    man = folder / "manifest.json"
    if not man.exists():
        return False
    try:
        return (folder / load_manifest_file(man)["file"]).exists()
    except (ValueError, TypeError, OSError):  # not a manifest; a "file" that is not a name
        return True


def _op_count(man: dict) -> int | None:
    graph = man.get("graph", {})
    for key in ("tflite_ops", "coreml_ops"):
        if graph.get(key):
            return int(sum(graph[key].values()))
    return graph.get("nodes")


def _cpu_jiffies() -> tuple[int, int] | None:
    """(idle, total) CPU time of the whole machine from /proc/stat; None where there is none
    (macOS, where Core ML rows run: the bench must not stop there for want of a load figure)."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return vals[3] + vals[4], sum(vals[:8])  # guest time is already counted in user time


def _children_cpu_s() -> float | None:
    """CPU seconds of this process's finished children (the latency workers); None off Unix."""
    try:
        import resource
    except ImportError:
        return None
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


LATENCY_TIMEOUT_S = 1800  # one (file, thread count): ~1 s normally; a hung worker must not hang the bench


def measure_latency(path: Path | None, threads: int, runs: int, warmup: int) -> dict:
    cmd = [sys.executable, "-m", "egeunet.benchmarks.latency_worker", "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup)]
    if path is not None:
        cmd += ["--model", str(path)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    before, own0, t0 = _cpu_jiffies(), _children_cpu_s(), time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=LATENCY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"latency worker did not finish within {LATENCY_TIMEOUT_S} s") from None
    after, own1, wall = _cpu_jiffies(), _children_cpu_s(), time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError((r.stderr.strip().splitlines() or ["latency worker failed"])[-1])
    try:
        times = np.array(json.loads(r.stdout.strip().splitlines()[-1])["times_ms"], dtype=float)
    except (IndexError, ValueError, KeyError, TypeError):
        raise RuntimeError(f"latency worker printed no timings (stdout: {r.stdout.strip()[-200:]!r})") from None
    # Other load = the machine's busy share minus the CPU the worker itself used (measured, not
    # assumed to be `threads` cores: at threads >= cores that assumption hid any other load).
    other = None
    if before and after and after[1] > before[1] and own0 is not None and own1 is not None:
        busy = 100.0 * (1 - (after[0] - before[0]) / (after[1] - before[1]))
        own = 100.0 * (own1 - own0) / (max(wall, 1e-9) * (os.cpu_count() or 1))
        other = round(max(0.0, busy - own), 1)
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
            "p99": float(np.percentile(times, 99)), "runs": int(len(times)), "other_load_percent": other}


def _below(value: float, limit: float) -> str:
    """``value`` (< ``limit``) with the table's 4 decimals, or more where 4 would round it up to
    the limit ("0.999 < 0.999" read as no failure at all)."""
    for digits in range(4, 13):
        shown = f"{value:.{digits}f}"
        if float(shown) < limit:
            return shown
    return repr(value)


def accuracy(rt, images: np.ndarray, masks: np.ndarray, torch_masks: list[np.ndarray],
             keep: int = 0) -> tuple[dict, list[np.ndarray]]:
    """Scores against the truth and against PyTorch's masks; also the first ``keep`` masks."""
    from egeunet.metrics import SegmentationMeter

    gt, agree = SegmentationMeter(), SegmentationMeter()
    kept = []
    for img, m, tm in zip(images, masks, torch_masks):
        pred = rt.predict(img) >= rt.pre.threshold
        gt.update(pred, m > 0)
        agree.update(pred, tm)
        if len(kept) < keep:
            kept.append(pred)
    return ({"dice_pooled": gt.pooled()["dice"], "dice_per_image": gt.per_image_mean()["dice"],
             "iou_vs_torch": agree.pooled()["iou"], "dice_vs_torch": agree.pooled()["dice"]}, kept)


def run(exports: str | Path = "exports", data: str | Path | None = None, threads: tuple[int, ...] = (1, 2, 4),
        quick: bool = False, formats: list[str] | None = None, min_iou: float = 0.9,
        plots: str | Path | None = None, n_overlay: int = 6, make_missing: bool = True,
        remote: str | None = None, remote_python: str = "python3", ssh_args: tuple[str, ...] = (),
        adb: str | None = None, benchmark_model: str | Path | None = None,
        emulate: tuple[str, ...] = (), device_images: int | None = None, weights: str | Path | None = None) -> dict:
    """One report: rows for this machine, then rows for each device asked for.

    ``weights``: the checkpoint of the PyTorch row, the parity reference and the source of
    missing exports (default: the shipped weights); keep one ``exports`` folder per model.

    ``remote`` (ssh://user@host[:port]), ``adb`` (a serial, or "" for the only phone, with
    ``benchmark_model``) and ``emulate`` (cortex-a76, ...) add rows for the .tflite files, marked
    with their ``device``; see :mod:`egeunet.benchmarks.devices`."""
    from egeunet.data import SegmentationFolder, resolve_data_root
    from egeunet.model.checkpoint import PRETRAINED, file_sha256, read_sidecar, resolve_weights
    from egeunet.runtimes import open_runtime

    check_inputs(Path(exports), formats, tuple(threads), make_missing)
    on_devices = [flag for flag, on in (("--remote", remote), ("--adb", adb is not None), ("--emulate", emulate)) if on]
    if on_devices and not any(_wanted(f.target, f.precision, formats) for f in FORMATS if f.target == "tflite"):
        raise ValueError(f"{' '.join(on_devices)} runs .tflite files, and --formats {' '.join(formats)} selects none: "
                         "add tflite (or tflite-int8, ...) to --formats")
    if remote or adb is not None or benchmark_model or emulate:
        from egeunet.benchmarks.devices import validate

        validate(remote, adb, benchmark_model, tuple(emulate))
    n_images, runs, warmup = (16, 10, 3) if quick else (None, 50, 10)
    weights = resolve_weights(weights) if weights else None  # None: the shipped weights, labelled so
    # the test split of the data the weights were trained on, unless --data says otherwise; the
    # exports made below then check parity on the same folder
    folder = SegmentationFolder(resolve_data_root(data, trained_on=read_sidecar(weights or PRETRAINED).get("data")))
    data = folder.root
    split = folder.load_split("test", 256, n_images)
    reference_sha = file_sha256(weights or PRETRAINED)
    torch_rt = open_runtime(weights, runtime="torch")
    torch_masks = [torch_rt.predict(img) >= torch_rt.pre.threshold for img in split.images]
    export_failures = ensure_exports(Path(exports), formats, data, weights) if make_missing else {}
    rows = [Row(*key.split("-", 1), None, status="failed", reason=reason) for key, reason in export_failures.items()]
    masks_by_row: dict[str, list[np.ndarray]] = {}
    device_files = []  # the .tflite files the host rows could measure, for the device rows
    for fmt, precision, path, man in discover(Path(exports), weights):
        key = f"{fmt}-{precision}"
        if not _wanted(fmt, precision, formats):
            continue
        size, ops = man.get("bytes"), _op_count(man)
        if fmt != "torch" and not path.exists():  # a manifest left without its file stopped the whole run
            rows.append(Row(fmt, precision, str(path), status="failed",
                            reason=f"{path.name} is missing beside its manifest.json; re-export it"))
            log.info("[bench] %s failed (no model file)", key)
            continue
        if fmt != "torch":  # the file measured, which may have been changed since its manifest was written
            size = size_of(path)
            if man.get("sha256") and sha256_of(path) != man["sha256"]:
                log.warning("[bench] %s differs from the file its manifest describes (sha256): bytes measured, "
                            "op count unknown; re-export it for a manifest that matches", path)
                ops = None
        row = Row(fmt, precision, str(path) if path else "shipped weights", size_bytes=size, ops=ops)
        if man.get("weights_sha256", reference_sha) != reference_sha:  # parity against another model means nothing
            row.status, row.reason = "failed", (f"made from other weights (sha256 {man['weights_sha256'][:12]}…) than "
                                                f"the PyTorch row: keep one --exports folder per model")
            rows.append(row)
            continue
        if fmt == "tflite":
            device_files.append((path, man))
        try:
            rt = torch_rt if fmt == "torch" else open_runtime(path)
            # a second file of one format and precision (tflite-int8-old/) gets its own overlay row
            label = key if key not in masks_by_row else f"{key} ({Path(path).parent.name})"
            scores, masks_by_row[label] = accuracy(rt, split.images, split.masks, torch_masks, n_overlay if plots else 0)
            for k, v in scores.items():
                setattr(row, k, v)
            for t in threads:
                row.latency_ms[str(t)] = measure_latency(path, t, runs, warmup)
            row.fps = 1000.0 / row.latency_ms[str(threads[0])]["p50"]
            loads = [v["other_load_percent"] for v in row.latency_ms.values() if v["other_load_percent"] is not None]
            row.busy_cpu_percent = max(loads) if loads else None  # None: no /proc/stat to sample
            if row.iou_vs_torch < min_iou:
                shown = _below(row.iou_vs_torch, min_iou)
                row.status, row.reason = "parity-failed", f"mask IoU vs torch {shown} < {min_iou}"
        except (ImportError, ValueError, RuntimeError) as e:
            row.status, row.reason = "failed", str(e).splitlines()[0]
        log.info("[bench] %s %s %s", key, row.status, row.reason)
        rows.append(row)
    rows.sort(key=lambda r: _ORDER.get(f"{r.format}-{r.precision}", len(_ORDER)))
    if remote or adb is not None or emulate:
        from egeunet.benchmarks.devices import device_rows

        # not a file made from other weights (it would be scored against this model's PyTorch masks;
        # its host row already says failed), nor a missing one
        rows += device_rows(device_files, split, torch_masks, threads, runs, warmup, quick, remote=remote,
                            remote_python=remote_python, ssh_args=ssh_args, adb=adb,
                            benchmark_model=benchmark_model, emulate=emulate, device_images=device_images)
    report = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "n_images": len(split),
              "quick": quick, "threads": list(threads), "rows": [asdict(r) for r in rows]}
    if any(r.format == "tflite" and r.precision == "int8" and r.device is None for r in rows):
        from egeunet.benchmarks.goals import deployment_goals

        report["int8_goals"] = deployment_goals(report)
    if plots:
        from egeunet.benchmarks.plots import write_plots

        images = split.images[:n_overlay]
        masks_by_row = {"truth": [m > 0 for m in split.masks[:n_overlay]],
                        **{k: v for k, v in masks_by_row.items() if v}}
        report["plots"] = [str(p) for p in write_plots(report, Path(plots), images, masks_by_row)]
    return report


def write_report(report: dict, table: str, json_out: str | None, md_out: str | None) -> None:
    """Print the Markdown table; write the JSON and Markdown files atomically where asked."""
    from egeunet.model.checkpoint import atomic_write_bytes, atomic_write_json

    print(table)
    if json_out:
        atomic_write_json(json_out, report)
    if md_out:
        atomic_write_bytes(md_out, (table + "\n").encode())


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "system": platform.platform(),
            "python": platform.python_version()}


def _f(v, fmt):
    return format(v, fmt) if v is not None else "—"


def _p50(lat: dict) -> str:
    # adb rows from an older benchmark_model have only the mean: say so rather than call it p50
    if lat.get("p50") is not None:
        return format(lat["p50"], ".2f")
    return f"avg {lat['avg']:.2f}" if lat.get("avg") is not None else "—"


def markdown(report: dict) -> str:
    ts = report["threads"]
    rows = report["rows"]
    on_devices = any(r.get("device") for r in rows)
    head = "| format | precision | status | bytes | ops | Dice pooled | Dice/img | IoU vs torch | " + \
        " | ".join(f"ms p50 @{t}" for t in ts) + f" | FPS @{ts[0]} |" + (" device |" if on_devices else "")
    lines = [head, "|" + "---|" * (9 + len(ts) + on_devices)]
    # two files of one format and precision (a copy kept as exports/tflite-int8-old) gave two rows
    # that read the same: name each one's folder
    keys = [(r["format"], r["precision"], r.get("device")) for r in rows]
    for r, key in zip(rows, keys):
        f = _f
        fmt = r["format"] + (f" ({Path(r['path']).parent.name})" if keys.count(key) > 1 and r.get("path") else "")
        lat = " | ".join(_p50(r["latency_ms"].get(str(t), {})) for t in ts)
        status = r["status"] + (f" ({r['reason']})" if r["reason"] and r["status"] != "ok" else "")
        status = status.replace("|", "\\|")  # a "|" in a reason would split the cell and shift the columns
        lines.append(f"| {fmt} | {r['precision']} | {status} | {f(r['size_bytes'], ',')} | {f(r['ops'], 'd')} | "
                     f"{f(r['dice_pooled'], '.4f')} | {f(r['dice_per_image'], '.4f')} | {f(r['iou_vs_torch'], '.4f')} | "
                     f"{lat} | {f(r['fps'], '.1f')} |" + (f" {r.get('device') or 'this machine'} |" if on_devices else ""))
    m = report["machine"]
    lines.append(f"\n{report['n_images']} test images; {m['cpu']}, {m['cores']} cores; {report['date']}.")
    busy = [r for r in report["rows"] if (r["busy_cpu_percent"] or 0) > 20]
    if busy:
        lines.append("WARNING: the CPU was busy with other work while timing: "
                     + ", ".join(f"{r['format']}-{r['precision']} ({r['busy_cpu_percent']:.0f}%)" for r in busy))
    parity = [r for r in rows if r.get("vs_host")]
    if parity:
        lines += ["", "Devices against this machine (same file, same inputs):", "",
                  "| device | format | precision | images | max \\|Δ\\| vs host | mask IoU vs host | bit-identical |",
                  "|---|---|---|---:|---:|---:|---|"]
        for r in parity:
            v = r["vs_host"]
            lines.append(f"| {r['device']} | {r['format']} | {r['precision']} | {v['images']} | {v['max_abs_diff']:.2g} | "
                         f"{v['mask_iou']:.4f} | {'yes' if v['bit_identical'] else 'no'} |")
    emulated = [r for r in rows if r.get("instructions_per_inference") is not None]
    if emulated:
        lines += ["", "Emulated cores: aarch64 instructions per inference (1 thread; a cost proxy for ratios, "
                  "no caches or IPC, not a time):", "",
                  "| device | precision | instructions / inference | vs fp32 on this core | sdot+udot | fmla | "
                  "smlal+smull |", "|---|---|---:|---:|---:|---:|---:|"]
        fp32 = {r["device"]: r["instructions_per_inference"] for r in emulated if r["precision"] == "fp32"}
        for r in emulated:
            c, base = r["insn_classes"], fp32.get(r["device"])
            ratio = f"{r['instructions_per_inference'] / base:.2f}×" if base else "—"
            lines.append(f"| {r['device']} | {r['precision']} | {r['instructions_per_inference'] / 1e6:,.1f} M | {ratio} | "
                         f"{(c.get('sdot', 0) + c.get('udot', 0)) / 1e6:,.2f} M | {c.get('fmla', 0) / 1e6:,.2f} M | "
                         f"{sum(c.get(k, 0) for k in ('smlal', 'umlal', 'smull', 'umull')) / 1e6:,.2f} M |")
    if report.get("int8_goals"):
        from egeunet.benchmarks import goals

        lines += ["", goals.markdown(report["int8_goals"])]
    return "\n".join(lines)
