"""Console entry points. Each ``main`` parses, calls the API and prints; errors that a user
can fix (bad paths, bad data, bad weights) end in one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path

from egeunet.data import DataError
from egeunet.model.checkpoint import CheckpointError
from egeunet.predict import OutputWriteError
from egeunet.preprocess import ImageReadError

USER_ERRORS = (DataError, CheckpointError, ImageReadError, OutputWriteError, ValueError, ImportError,
               FileNotFoundError, PermissionError)


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(argv=None) -> int:
        # Our own progress lines at INFO; other libraries only from WARNING up (coremltools logs
        # every converted and removed op at INFO: thousands of lines per Core ML export).
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("egeunet").setLevel(logging.INFO)
        try:
            return fn(argv) or 0
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


_THREADS_HELP = "CPU threads of torch or the runtime (default: its choice; LiteRT: 1)"


def _int_at_least(low: int):
    """argparse type: an integer >= ``low`` (0 or a negative would silently mean "no limit",
    drop work, or fail deep inside a library)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {n}")
        return n

    return parse


def _threads(text: str) -> int:
    """argparse type for --threads: >= 1, and at most 4x this machine's CPUs (torch segfaults
    on absurd counts; more threads than that only measures contention)."""
    n = _int_at_least(1)(text)
    cap = 4 * (os.cpu_count() or 1)
    if n > cap:
        raise argparse.ArgumentTypeError(f"{n} threads is more than 4x this machine's {os.cpu_count()} CPUs "
                                         f"(at most {cap})")
    return n


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1]; NaN is refused (it would disable a gate and is not JSON)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:  # False for NaN too
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], not {text}")
    return v


def _output_folder(path: str | Path, flag: str, given: str | None = None) -> Path:
    """``path`` as a folder to write into, checked before any work: neither it nor a folder above
    it may be a file, and the nearest one that exists must be writable. ``given``: what the user
    typed, for the message (a file's path when ``path`` is its folder)."""
    p, given = Path(path), given or str(path)
    nearest = next(q for q in (p, *p.parents) if q.exists() or q.is_symlink())
    if not nearest.is_dir():
        where = "is a file" if str(nearest) == given else f"{nearest} is a file"
        raise ValueError(f"{flag} {given}: {where}, not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {given}: {nearest} is not writable")
    return p


def _output_file(path: str | None, flag: str) -> Path | None:
    """``path`` as a file written at the end of a run, checked (and its folder made) before any
    work, so that a typo does not cost the whole run."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give a file name")
    _output_folder(p.parent, flag, given=path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@_user_errors
def train_main(argv=None) -> int:
    from egeunet.data import resolve_data_root
    from egeunet.train import TrainConfig, train

    p = argparse.ArgumentParser(prog="egeunet-train", description="Train EGE-UNet (the paper's recipe by default).")
    p.add_argument("--data", help="data folder (images/, masks/, splits.csv); default $EGEUNET_DATA or ../shared/data/isic2018")
    p.add_argument("--out", default="runs/egeunet", help="output folder for checkpoints and logs (default %(default)s)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs,
                   help="length of the cosine schedule (default %(default)s, the paper's)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="default %(default)s (the paper's)")
    p.add_argument("--lr", type=float, default=TrainConfig.lr, help=f"AdamW's learning rate, decayed by a cosine "
                   f"to {TrainConfig.min_lr:g} (default %(default)g)")
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay,
                   help="AdamW's weight decay (default %(default)g)")
    p.add_argument("--threads", type=_threads, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--processes", type=_int_at_least(1), metavar="N",
                   help="CPU: split each step's batch over N processes sharing the threads (same mathematics; "
                        "default 2 where there are >= 2 threads, 1 for --norms batch)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed,
                   help="initial weights, data order and augmentation (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--stop-after-epoch", type=_int_at_least(1), metavar="N",
                   help="stop after epoch N (the cosine schedule still spans --epochs); continue later with --resume")
    p.add_argument("--limit-train", type=_int_at_least(1), metavar="N",
                   help="use only the first N train images (smoke runs)")
    p.add_argument("--limit-val", type=_int_at_least(1), metavar="N", help="use only the first N val images")
    p.add_argument("--no-compile", action="store_true",
                   help="eager LayerNorms and loss instead of compiled ones (same results, slower; no C++ compiler needed)")
    p.add_argument("--norms", choices=["paper", "batch"], default="paper",
                   help="paper: EGE-UNet as published (default); batch: the EGE-UNet-BN variant, whose norms "
                        "fold into the convolutions of exported files (a different model: its own weights and Dice)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda: the whole step replayed as a CUDA graph, float32 throughout")
    p.add_argument("--no-cuda-graphs", action="store_true", help="with --device cuda: eager steps, no graph replay")
    p.add_argument("--plot-every", type=_int_at_least(1), default=1, metavar="N", help="redraw curves.png every N epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bars (log lines only)")
    a = p.parse_args(argv)
    _output_folder(a.out, "--out")
    cfg = TrainConfig(data=str(resolve_data_root(a.data)), out=a.out, epochs=a.epochs, batch_size=a.batch_size,
                      lr=a.lr, weight_decay=a.weight_decay, threads=a.threads, processes=a.processes, seed=a.seed, resume=a.resume, stop_after_epoch=a.stop_after_epoch,
                      limit_train=a.limit_train, limit_val=a.limit_val, compiled_kernels=not a.no_compile, norms=a.norms,
                      device=a.device, cuda_graphs=not a.no_cuda_graphs, plot_every=a.plot_every, progress=not a.quiet)
    _terminate_cleanly()  # a SIGTERM mid-save must not leave a checkpoint's temporary file in --out
    summary = train(cfg)
    print(f"best val Dice {summary['best_val_dice']:.4f}; best checkpoint {summary['best']}")
    if summary["epoch"] < a.epochs:  # --stop-after-epoch: say how the schedule goes on
        print(f"stopped after epoch {summary['epoch']} of {a.epochs}: add --resume to the same command "
              f"(without --stop-after-epoch, or with a later one) to continue")
    return 0


@_user_errors
def eval_main(argv=None) -> int:
    from egeunet.data import SegmentationFolder, resolve_data_root
    from egeunet.evaluate import evaluate_arrays, evaluate_runtime
    from egeunet.metrics import METRICS
    from egeunet.model.checkpoint import atomic_write_json, load_checkpoint

    p = argparse.ArgumentParser(prog="egeunet-eval", description="Dice, IoU, accuracy, sensitivity, specificity on a split.")
    p.add_argument("--split", default="test", help="train, val or test (default %(default)s)")
    p.add_argument("--data", help="data folder; default $EGEUNET_DATA, else the folder the weights were trained "
                   "on, else ../shared/data/isic2018")
    p.add_argument("--weights", help="a .safetensors checkpoint with its .json sidecar, or a shipped model: egeunet "
                   "(the default) or egeunet-bn")
    p.add_argument("--model", help="instead of --weights: an exported file (.onnx, .tflite; .mlpackage on macOS) "
                   "beside its manifest.json, scored as deployed through its runtime")
    p.add_argument("--json", dest="json_out", help="write the metrics as JSON here")
    p.add_argument("--threads", type=_threads, help=_THREADS_HELP)
    p.add_argument("--limit", type=_int_at_least(1), metavar="N", help="evaluate only the first N images of the split")
    p.add_argument("--bootstrap", type=_int_at_least(0), default=0, metavar="B",
                   help="add 95%% bootstrap confidence intervals (B resamples of the images) and per-image scores")
    a = p.parse_args(argv)
    json_out = _output_file(a.json_out, "--json")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.model and a.weights:
        raise ValueError("give --weights (a checkpoint) or --model (an exported file), not both")
    if a.model:
        from egeunet.export.common import sha256_of
        from egeunet.runtimes import open_runtime

        runtime = open_runtime(a.model, threads=a.threads)
        pre = runtime.pre
        folder = SegmentationFolder(resolve_data_root(a.data, trained_on=_manifest_weights_data(a.model)))
        split = folder.load_split(a.split, pre.size, a.limit, progress=True)
        result = evaluate_runtime(runtime, split, bootstrap=a.bootstrap, progress=True)
        model_info = {"model": str(a.model), "runtime": runtime.name, "model_sha256": sha256_of(Path(a.model))}
    else:
        model, pre, meta = load_checkpoint(a.weights)
        folder = SegmentationFolder(resolve_data_root(a.data, trained_on=meta.get("data")))
        split = folder.load_split(a.split, pre.size, a.limit, progress=True)
        result = evaluate_arrays(model, split, pre, bootstrap=a.bootstrap)
        model_info = {"weights": str(a.weights or "shipped"), "weights_sha256": meta["weights_sha256"]}
    result.update({"split": a.split, "data_root": str(folder.root), "threshold": pre.threshold, **model_info})
    print(f"{'':10s}" + "".join(f"{m:>8s}" for m in METRICS))
    for kind in ("pooled", "per_image"):
        print(f"{kind:10s}" + "".join(f"{result[kind][m]:8.4f}" for m in METRICS))
        if "ci95" in result:
            cis = (result["ci95"][kind][m] for m in METRICS)
            print(f"{'  95% CI':10s} " + "  ".join(f"{m} {lo:.4f}-{hi:.4f}" for m, (lo, hi) in zip(METRICS, cis)))
    print(f"{result['n_images']} {a.split} images from {folder.root}, threshold {pre.threshold}")
    if json_out:
        atomic_write_json(json_out, result)
    return 0


def _manifest_weights_data(model) -> dict | None:
    """The ``weights_data`` entry of an exported file's manifest.json (None where absent)."""
    import json

    from egeunet.runtimes.base import manifest_path

    man = manifest_path(model)  # the same manifest the runtime read
    try:
        found = json.loads(man.read_text(encoding="utf-8")).get("weights_data")
    except (OSError, ValueError, AttributeError):
        return None  # open_runtime has already read it, or said what is wrong with it
    return found if isinstance(found, dict) else None


def _terminate_cleanly() -> None:
    """SIGTERM (``kill``, ``timeout``, a CI job cancelled) ends the process by default without
    running ``finally`` blocks, which would leave the export's staging folder (a complete or
    half-written model file) or a checkpoint's temporary file inside --out. Turn it into
    SystemExit so the clean-up runs."""
    import signal
    import threading

    from egeunet.export.common import TERMINATION_REQUESTED

    def on_sigterm(signum, frame):
        TERMINATION_REQUESTED.set()  # for publish(), should this SystemExit be swallowed
        sys.exit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)


@_user_errors
def export_main(argv=None) -> int:
    from egeunet.export import ExportError, export
    from egeunet.export.api import DEFAULT_NUM_CALIB, DEFAULT_NUM_VERIFY
    from egeunet.export.common import TARGETS

    p = argparse.ArgumentParser(prog="egeunet-export", description="Export EGE-UNet to ONNX, TFLite or Core ML, "
                                "verified against PyTorch, with a manifest.json beside the artifact.")
    p.add_argument("--target", required=True, choices=TARGETS, help="onnx (the fp32 hub), tflite (fp32 by default) "
                   "or coreml (fp16 by default); the precision with --int8 / --fp16")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true", help="tflite: int8 weights, int8 arithmetic in the larger "
                      "convolutions (dynamic range, float pixel input); coreml: per-channel int8 weights")
    prec.add_argument("--fp16", action="store_true", help="float16 weights (tflite; Core ML is fp16 by default)")
    p.add_argument("--full-integer", action="store_true", help="with --int8, tflite: every tensor int8 except "
                   "GELU/RSQRT/ADD, uint8 pixel input, calibrated on training images (for NPUs / integer accelerators)")
    p.add_argument("--converter", choices=("tf", "onnx2tf"), default="tf", help="tflite route: our NHWC graph + "
                   "TensorFlow's converter (default) or the ONNX file through onnx2tf")
    p.add_argument("--weights", help="checkpoint .safetensors with its .json sidecar, or a shipped model: egeunet "
                   "(the default) or egeunet-bn")
    p.add_argument("--calib", help="folder of images for int8 calibration (default: a sample of the train split)")
    p.add_argument("--num-calib", type=_int_at_least(1), help=f"with --full-integer: calibration images "
                   f"(default {DEFAULT_NUM_CALIB})")
    p.add_argument("--num-verify", type=_int_at_least(1), default=DEFAULT_NUM_VERIFY,
                   help="parity images (default %(default)s)")
    p.add_argument("--data", help="data root for calibration/parity images (default $EGEUNET_DATA, else the folder "
                   "the weights were trained on, else ../shared/data/isic2018)")
    p.add_argument("--min-iou", type=_fraction, help="parity gate: minimum mask IoU vs PyTorch fp32, 0 to 1 "
                   "(default per format)")
    p.add_argument("--max-prob-diff", type=_fraction, help="parity gate of the fp32 formats: maximum |probability "
                   "difference| vs PyTorch fp32, 0 to 1 (default: onnx 1e-4, tflite 1e-3)")
    p.add_argument("--output", choices=("logits", "probs"), default="logits", help="model output (default %(default)s)")
    p.add_argument("--out", help="output folder (default exports/TARGET-PRECISION)")
    a = p.parse_args(argv)
    if a.target == "onnx" and (a.int8 or a.fp16):
        raise ValueError("--target onnx is the fp32 hub; --int8/--fp16 apply to tflite and coreml")
    if a.full_integer and not (a.int8 and a.target == "tflite"):
        raise ValueError("--full-integer goes with --target tflite --int8")
    if (a.calib or a.num_calib) and not a.full_integer:
        raise ValueError("--calib and --num-calib apply to --full-integer: the other variants need no "
                         "calibration images")
    if a.converter != "tf" and a.target != "tflite":
        raise ValueError("--converter applies to --target tflite only")
    if a.out:  # a file in the way is the user's to fix (exit 2), and found before the model loads
        _output_folder(a.out, "--out")
    precision = ("int8-full" if a.full_integer else "int8") if a.int8 else \
        "fp16" if a.fp16 or a.target == "coreml" else "fp32"
    _terminate_cleanly()
    try:
        r = export(a.target, precision, weights=a.weights, out=a.out, calib=a.calib,
                   num_calib=a.num_calib or DEFAULT_NUM_CALIB,
                   data=a.data, num_verify=a.num_verify, min_iou=a.min_iou, output=a.output, converter=a.converter,
                   max_prob_diff=a.max_prob_diff)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(r.summary())
    print(f"manifest: {r.manifest_path}")
    return 0


@_user_errors
def predict_main(argv=None) -> int:
    from egeunet.predict import collect_named_images, predict_many
    from egeunet.runtimes import open_runtime

    p = argparse.ArgumentParser(prog="egeunet-predict", description="Segment images: mask PNG at the original "
                                "size, an overlay with the lesion contour, and the lesion area in percent.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files of any size, and folders "
                   "searched for them recursively (hidden files skipped)")
    p.add_argument("--model", help="a .safetensors, .onnx, .tflite or .mlpackage, or a shipped model: egeunet "
                   "(the default) or egeunet-bn")
    p.add_argument("--out", default="predictions", help="output folder (default %(default)s); outputs are named "
                   "after each image's path under the folder given (DIR/a/x.jpg -> OUT/a/x_mask.png, "
                   "OUT/a/x_overlay.png), images sharing a name keep their extension (x.jpg_mask.png beside "
                   "x.png_mask.png), and names that would still clash are refused before anything is written")
    p.add_argument("--threads", type=_threads, help=_THREADS_HELP)
    a = p.parse_args(argv)
    _output_folder(a.out, "--out")
    files = collect_named_images(a.inputs, a.out)
    if not files:
        raise ValueError(f"no image files in {' '.join(a.inputs)}")
    from tqdm import tqdm

    runtime = open_runtime(a.model, threads=a.threads)
    failed = 0
    for path, res in predict_many(runtime, files, Path(a.out)):
        if isinstance(res, str):
            failed += 1
            tqdm.write(f"skipped: {res}", file=sys.stderr)
        else:
            tqdm.write(f"{path}: lesion {res.area_percent:.1f}% of {res.size[0]}x{res.size[1]} -> {res.mask_path}")
    if failed:
        print(f"error: {failed} of {len(files)} files could not be read", file=sys.stderr)
        return 1
    return 0


@_user_errors
def bench_main(argv=None) -> int:
    from egeunet.benchmarks.bench import markdown, run, write_report

    p = argparse.ArgumentParser(prog="egeunet-bench", description="Size, Dice, parity with PyTorch and latency "
                                "of every exported model file (plus PyTorch eager), in one run.")
    p.add_argument("--exports", default="exports", help="folder of egeunet-export outputs (default %(default)s); "
                   "default variants missing from it are exported there from the shipped weights first")
    p.add_argument("--no-export", action="store_true", help="measure only what is already in --exports")
    p.add_argument("--weights", help="checkpoint for the PyTorch row, the parity reference and missing exports "
                   "(default: the shipped weights); use one --exports folder per model")
    p.add_argument("--formats", nargs="+", help="only these targets or target-precision keys (e.g. torch tflite-int8)")
    p.add_argument("--data", help="data root for the test split (default $EGEUNET_DATA or ../shared/data/isic2018)")
    p.add_argument("--threads", type=_threads, nargs="+", default=[1, 2, 4],
                   help="thread counts to time, one latency column each (default: 1 2 4)")
    p.add_argument("--quick", action="store_true", help="16 images, 10 timed runs: a smoke test, not a measurement")
    p.add_argument("--min-iou", type=_fraction, default=0.9, help="mask IoU vs torch below this marks parity-failed")
    p.add_argument("--json", dest="json_out", help="write every row, the run's machine and the goals as JSON here")
    p.add_argument("--md", dest="md_out", help="write the printed tables (Markdown) here")
    p.add_argument("--plots", metavar="DIR", help="write latency_vs_size.png, dice_per_format.png, overlays.png here")
    p.add_argument("--int8-sensitivity", action="store_true", help="also report which block / op type costs how "
                   "much accuracy in full int8 (python -m egeunet.benchmarks.int8_sensitivity; about 2 minutes)")
    d = p.add_argument_group("phone-class CPUs (rows for the .tflite files, marked with the device)")
    d.add_argument("--remote", metavar="ssh://user@host[:port]", help="also run on this aarch64 Linux (Raspberry Pi) "
                   "over SSH (key login); it needs python3, numpy and ai-edge-litert or tflite-runtime")
    d.add_argument("--remote-python", default="python3", help="python on the remote device (default %(default)s)")
    d.add_argument("--ssh-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for ssh and scp, repeatable (e.g. --ssh-arg=-i --ssh-arg=~/.ssh/pi)")
    d.add_argument("--adb", nargs="?", const="", metavar="SERIAL", help="also run on the Android phone (SERIAL, "
                   "or the only one attached) with LiteRT's benchmark_model, pinned to the big cores")
    d.add_argument("--benchmark-model", metavar="PATH", help="LiteRT's android_aarch64_benchmark_model binary for --adb")
    d.add_argument("--emulate", nargs="+", default=[], metavar="CORE", help="also run on emulated cores "
                   "(cortex-a76 cortex-a72 cortex-a55): parity with this machine and instructions per inference; "
                   "needs `egeunet-armlab setup` once")
    d.add_argument("--device-images", type=_int_at_least(1), help="test images for Dice and parity on a device "
                   "(default: SSH 64, emulated 8; --quick: 16 and 4)")
    a = p.parse_args(argv)
    json_out = _output_file(a.json_out, "--json")  # made and checked now: a typo must not cost the whole run
    md_out = _output_file(a.md_out, "--md")
    if json_out and md_out and json_out.resolve() == md_out.resolve():  # the table would replace the JSON
        raise ValueError(f"--json {a.json_out} and --md {a.md_out} are the same file; give two names")
    if a.plots:
        _output_folder(a.plots, "--plots")
    # a device option without its device was silently ignored: the run measured this machine only
    unused = [flag for flag, given, needs in (
        ("--device-images", a.device_images is not None, a.remote or a.adb is not None or a.emulate),
        ("--remote-python", a.remote_python != "python3", a.remote), ("--ssh-arg", a.ssh_arg, a.remote))
        if given and not needs]
    if unused:
        p.error(f"{', '.join(unused)}: no device to use it on (give --remote, --adb or --emulate as well)")
    try:
        report = run(a.exports, a.data, tuple(a.threads), a.quick, a.formats, a.min_iou, a.plots,
                     make_missing=not a.no_export, remote=a.remote, remote_python=a.remote_python,
                     ssh_args=tuple(a.ssh_arg), adb=a.adb, benchmark_model=a.benchmark_model,
                     emulate=tuple(a.emulate), device_images=a.device_images, weights=a.weights)
    except RuntimeError as e:  # a device route that cannot start (lab not set up, ...); ValueError: _user_errors
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = markdown(report)
    if a.int8_sensitivity:
        from egeunet.benchmarks import int8_sensitivity

        report["int8_sensitivity"] = int8_sensitivity.run(a.data, *((16, 16, 3) if a.quick else ()), weights=a.weights)
        table += "\n\nint8 sensitivity (full int8, one block or op type kept float):\n\n" + \
            int8_sensitivity.markdown(report["int8_sensitivity"])
    write_report(report, table, a.json_out, a.md_out)
    return 0


@_user_errors
def armlab_main(argv=None) -> int:
    from egeunet.benchmarks import emulate

    p = argparse.ArgumentParser(prog="egeunet-armlab", description="The emulated Cortex-A lab for "
                                "`egeunet-bench --emulate`: an arm64 Debian root filesystem with LiteRT, run under "
                                "qemu-aarch64 with an instruction-counting plugin.")
    p.add_argument("command", choices=["setup", "check"], help="setup: build it (idempotent, needs root, about "
                   "4 minutes the first time); check: say whether it is ready")
    p.add_argument("--dir", help="where the lab lives (default $EGEUNET_ARMLAB or ~/.cache/egeunet/armlab)")
    a = p.parse_args(argv)
    lab = Path(a.dir) if a.dir else emulate.lab_dir()
    try:
        if a.command == "setup":
            emulate.setup(lab)
        emulate.check_lab(lab)
        qemu = emulate.qemu_binary()  # a lab without qemu-aarch64 is not ready either
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"arm lab ready at {lab}; {qemu} emulates "
          f"{', '.join(c for c in emulate.CORES if c in emulate.available_cpus(qemu))}")
    return 0
