"""The emulated Cortex-A lab: run .tflite files on an emulated Arm core on this x86 machine.

``egeunet-armlab setup`` builds it once (``arm_lab/setup.sh``): a Debian arm64 root filesystem
with python3 and the aarch64 wheels of ai-edge-litert and numpy, and a small qemu TCG plugin of
ours (``arm_lab/insn_count.c``) that counts the aarch64 instructions the guest executes. Then
``egeunet-bench --emulate cortex-a76`` runs ``device_runner.py`` inside it under ``qemu-aarch64
-cpu cortex-a76`` and reports, per file:

- parity with the same file on this x86 machine (max |Δ| of the dequantised outputs, mask IoU,
  bit identity) on a few test images;
- aarch64 instructions per inference: count(1 warm-up + N inferences) − count(1 warm-up + 0),
  divided by N, so start-up, imports, model load and XNNPACK's one-time set-up cancel out; with
  the opcode classes (sdot/udot, fmla, smlal/smull) that show which kernels XNNPACK chose.

The count is a cost *proxy*: no caches, no memory system, no issue width or IPC. Use it for
ratios (int8 vs fp32 on one core, one core vs another), never as a time. Emulated wall time is
100-450x slower than hardware and is never reported as latency.

qemu 7.2 (Debian bookworm) hands the guest the host's x86 /proc/cpuinfo, on which XNNPACK's CPU
detection crashes; the lab gives the guest an arm64 cpuinfo of the emulated core instead
(``<rootfs>/proc/cpuinfo``, which ``qemu -L <rootfs>`` shows the guest as /proc/cpuinfo).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.benchmarks import device_common as dc

log = logging.getLogger(__name__)

SETUP_SCRIPT = Path(__file__).with_name("arm_lab") / "setup.sh"
SITE = "/opt/egeunet-site"  # guest path of the aarch64 wheels inside the rootfs


@dataclass(frozen=True)
class Core:
    """An Arm core as /proc/cpuinfo describes it on real hardware (MIDR fields and hwcaps)."""

    name: str
    part: int
    variant: int
    revision: int
    features: str
    where: str


CORES = {c.name: c for c in (
    Core("cortex-a72", 0xD08, 0x0, 3, "fp asimd evtstrm crc32 cpuid", "Raspberry Pi 4"),
    Core("cortex-a76", 0xD0B, 0x4, 1, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
         "asimdrdm lrcpc dcpop asimddp", "Raspberry Pi 5, phone big core"),
    Core("cortex-a55", 0xD05, 0x2, 0, "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
         "asimdrdm lrcpc dcpop asimddp", "phone little core"),
)}


def cpuinfo_text(core: Core, n: int) -> str:
    block = (f"BogoMIPS\t: 108.00\nFeatures\t: {core.features}\nCPU implementer\t: 0x41\n"
             f"CPU architecture: 8\nCPU variant\t: {core.variant:#x}\nCPU part\t: {core.part:#05x}\n"
             f"CPU revision\t: {core.revision}\n\n")
    return "".join(f"processor\t: {i}\n{block}" for i in range(n))


def lab_dir() -> Path:
    """$EGEUNET_ARMLAB, else ~/.cache/egeunet/armlab."""
    env = os.environ.get("EGEUNET_ARMLAB")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "egeunet" / "armlab"


def qemu_binary() -> str:
    """The dynamic qemu-aarch64 (the -static one cannot load plugins); $EGEUNET_ARMLAB_QEMU overrides."""
    q = os.environ.get("EGEUNET_ARMLAB_QEMU") or shutil.which("qemu-aarch64")
    if not q:
        raise RuntimeError("qemu-aarch64 not found: apt-get install -y qemu-user (then `egeunet-armlab setup`)")
    return q


def setup(lab: str | Path | None = None, python: str = sys.executable) -> Path:
    """Build (or finish building) the lab at ``lab``; idempotent. Needs root."""
    lab = Path(lab) if lab else lab_dir()
    r = subprocess.run(["bash", str(SETUP_SCRIPT), str(lab), python])
    if r.returncode != 0:
        raise RuntimeError(f"arm lab set-up failed (exit {r.returncode}); its message is above")
    return lab


def check_lab(lab: Path) -> None:
    need = [lab / ".stamp-rootfs", lab / ".stamp-wheels", lab / "libinsncount.so",
            lab / "rootfs" / "usr" / "bin" / "python3"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise RuntimeError(f"the emulated Cortex-A lab is not set up at {lab} (missing {missing[0]}): run "
                           "`egeunet-armlab setup` first (as root, about 4 minutes; or set $EGEUNET_ARMLAB)")


def available_cpus(qemu: str) -> list[str]:
    out = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True).stdout
    return [w for line in out.splitlines()[1:] for w in line.split()[:1]]


def check_cpu(cpu: str, qemu: str) -> Core:
    if cpu not in CORES:
        raise ValueError(f"--emulate {cpu}: unknown core; choose from {', '.join(CORES)}")
    have = available_cpus(qemu)
    if cpu not in have:
        version = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        raise ValueError(f"--emulate {cpu}: {version.strip()} does not emulate it (it has {', '.join(have)}); "
                         f"{cpu} needs a newer qemu-aarch64 with plugin support (set $EGEUNET_ARMLAB_QEMU)")
    return CORES[cpu]


class Lab:
    """The set-up lab: runs device_runner.py on one emulated core."""

    def __init__(self, lab: str | Path | None = None) -> None:
        self.dir = Path(lab) if lab else lab_dir()
        check_lab(self.dir)
        self.rootfs = self.dir / "rootfs"
        self.qemu = qemu_binary()

    def env(self) -> dict:
        # Nothing of the host's python set-up leaks in; one BLAS thread (numpy's OpenBLAS would
        # otherwise start a thread per core); fixed hashing and no bytecode writes so that two
        # runs execute the same instructions apart from what differs between them.
        return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LC_ALL": "C", "PYTHONPATH": SITE,
                "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1",
                "TF_CPP_MIN_LOG_LEVEL": "3"}

    def python(self, cpu: str, counts: Path | None = None) -> list[str]:
        cmd = [self.qemu, "-L", str(self.rootfs), "-cpu", cpu]
        if counts is not None:
            cmd += ["-plugin", f"{self.dir / 'libinsncount.so'},out={counts}"]
        return cmd + [str(self.rootfs / "usr" / "bin" / "python3")]

    @contextmanager
    def core(self, cpu: str):
        """Hold the lab for ``cpu``: the guest's /proc/cpuinfo describes that core meanwhile."""
        core = check_cpu(cpu, self.qemu)
        with open(self.dir / ".run.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            proc = self.rootfs / "proc"
            if os.path.ismount(proc):
                raise RuntimeError(f"{proc} is mounted (an interrupted set-up?): umount it, then rerun")
            (proc / "cpuinfo").write_text(cpuinfo_text(core, os.cpu_count() or 1))
            yield core

    def run(self, cpu: str, model: Path, inputs: Path, warmup: int = 0, runs: int = 0,
            outputs: Path | None = None, counts: Path | None = None, timeout: float = 1800) -> None:
        try:
            r = dc.run_runner(self.python(cpu, counts), model, inputs, threads=1, warmup=warmup, runs=runs,
                              outputs=outputs, env=self.env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"emulated {cpu}: {model.name} did not finish within {timeout:g} s") from None
        if r.returncode != 0:
            raise RuntimeError(f"emulated {cpu}: {model.name} failed: {dc.last_line(r.stderr, f'exit {r.returncode}')}")


def _read_counts(path: Path) -> dict:
    text = path.read_text() if path.exists() else ""
    if not text.strip():
        raise RuntimeError(f"the instruction-counting plugin wrote nothing to {path}")
    return json.loads(text)


def count_instructions(lab: Lab, cpu: str, model: Path, x: np.ndarray, n: int = 2) -> dict:
    """aarch64 instructions per inference on ``cpu`` (1 thread): (count with 1 warm-up + ``n``
    inferences − count with 1 warm-up + 0) / ``n``, in total and per opcode class."""
    with tempfile.TemporaryDirectory(prefix="egeunet-lab-") as d, lab.core(cpu):
        np.save(Path(d) / "x.npy", x[:1])
        totals = {}
        for k in (0, n):
            lab.run(cpu, model, Path(d) / "x.npy", warmup=1, runs=k, counts=Path(d) / f"c{k}.json")
            totals[k] = _read_counts(Path(d) / f"c{k}.json")
    per = {key: (totals[n][key] - totals[0][key]) / n for key in totals[0]}
    return {"per_inference": per, "n": n, "baseline_total": totals[0]["total"]}


def outputs_on(lab: Lab, cpu: str, prep: dc.Prepared) -> np.ndarray:
    """The raw outputs of the emulated core on every prepared input."""
    with tempfile.TemporaryDirectory(prefix="egeunet-lab-") as d, lab.core(cpu):
        np.save(Path(d) / "x.npy", prep.inputs)
        lab.run(cpu, prep.path, Path(d) / "x.npy", outputs=Path(d) / "y.npy")
        return np.load(Path(d) / "y.npy")


def measure(cpu: str, prep: dc.Prepared, lab: Lab | None = None, n: int = 2) -> dict:
    """Parity with this machine and instructions per inference for one file on one emulated core."""
    lab = lab or Lab()
    ref = dc.run_here(prep)
    raw = outputs_on(lab, cpu, prep)
    counts = count_instructions(lab, cpu, prep.path, prep.inputs, n)
    log.info("[emulate] %s %s: %.4g instructions/inference, max |Δ| vs x86 %.3g", cpu, prep.path.name,
             counts["per_inference"]["total"], dc.parity(raw, ref, prep.runtime)["max_abs_diff"])
    return {"outputs": raw, "vs_host": dc.parity(raw, ref, prep.runtime), "counts": counts,
            "qemu": qemu_version(lab.qemu)}


def qemu_version(qemu: str) -> str:
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"
