"""``egeunet-bench --adb [SERIAL] --benchmark-model PATH``: latency of .tflite files on an Android
phone with LiteRT's own ``benchmark_model`` binary.

The binary cannot be downloaded here: the user supplies it (LiteRT's prebuilt
``android_aarch64_benchmark_model``, or a bazel build of
``//tflite/tools/benchmark:benchmark_model`` with ``--config=android_arm64``). Steps, each an
``adb`` call: push the binary and the models to /data/local/tmp/egeunet, find the big cores
(highest ``cpuinfo_max_freq``), then per file and thread count run it pinned there with
``taskset`` (warm-up, then timed runs) and parse its summary. ``benchmark_model`` feeds random
inputs, so these rows carry latency only; parity on Arm comes from the SSH route or the lab.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEVICE_DIR = "/data/local/tmp/egeunet"


@dataclass(frozen=True)
class Adb:
    serial: str | None = None
    adb: str = "adb"

    def base(self) -> list[str]:
        return [self.adb, *(["-s", self.serial] if self.serial else [])]

    def push(self, local: str | Path, remote: str) -> list[str]:
        return [*self.base(), "push", str(local), remote]

    def shell(self, cmd: str) -> list[str]:
        return [*self.base(), "shell", cmd]

    def run(self, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        """``argv`` run to completion; a missing adb or a call that hangs is a RuntimeError."""
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise RuntimeError(f"{self.adb} not found: install the Android platform tools "
                               "(apt-get install adb) and connect the phone with USB debugging on") from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`{' '.join(map(shlex.quote, argv))}` did not finish within {timeout:g} s "
                               "(phone disconnected or locked?)") from None

    def call(self, argv: list[str], timeout: float = 600) -> str:
        r = self.run(argv, timeout)
        if r.returncode != 0:
            msg = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()[-1]
            raise RuntimeError(f"`{' '.join(map(shlex.quote, argv))}` failed: {msg}")
        return r.stdout

    def check_attached(self) -> str:
        """The serial of the phone to use, from ``adb devices``; a RuntimeError that says what to do
        when none is attached, ``serial`` is not, several are (and none was named), or the phone has
        not authorised this computer. (``adb wait-for-device`` would instead wait for ever.)"""
        devices = parse_devices(self.call([self.adb, "devices"], timeout=60))
        listed = ", ".join(f"{s} ({st})" for s, st in devices.items()) or "none"
        if self.serial:
            if self.serial not in devices:
                raise RuntimeError(f"adb: no device {self.serial} attached (`adb devices` lists {listed})")
            serial = self.serial
        elif not devices:
            raise RuntimeError("adb: no Android device attached (`adb devices` lists none): connect the phone "
                               "with USB debugging on (Developer options)")
        elif len(devices) > 1:
            raise RuntimeError(f"adb: several devices attached ({listed}): name one with --adb SERIAL")
        else:
            serial = next(iter(devices))
        state = devices[serial]
        if state != "device":
            hint = {"unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt",
                    "offline": "reconnect the cable or run `adb kill-server`"}.get(state, "check the connection")
            raise RuntimeError(f"adb: {serial} is {state}: {hint}")
        return serial


def parse_devices(text: str) -> dict[str, str]:
    """``adb devices`` output -> {serial: state} (device, unauthorized, offline, ...)."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t") if "\t" in line else line.split(None, 1)
        if len(parts) == 2 and not line.startswith(("List of devices", "*")) and parts[0].strip():
            out[parts[0].strip()] = parts[1].strip()
    return out


CPU_FREQS_CMD = ("for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; "
                 "do echo \"$f $(cat $f)\"; done")


def parse_cpu_freqs(text: str) -> dict[int, int]:
    """``CPU_FREQS_CMD`` output -> {cpu index: max kHz}."""
    freqs = {}
    for line in text.splitlines():
        m = re.match(r"\s*/sys/devices/system/cpu/cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)\s*$", line)
        if m:
            freqs[int(m[1])] = int(m[2])
    return freqs


def big_core_mask(freqs: dict[int, int]) -> str:
    """Hex ``taskset`` mask of every core faster than the slowest cluster (all cores when they are
    all alike): the prime and big cores of a big.LITTLE phone."""
    if not freqs:
        raise RuntimeError("could not read cpuinfo_max_freq of any core")
    slowest = min(freqs.values())
    big = [c for c, f in freqs.items() if f > slowest] or list(freqs)
    return format(sum(1 << c for c in big), "x")


def benchmark_command(binary: str, model: str, threads: int, mask: str | None, warmup: int, runs: int) -> str:
    """The device-side command line for one (file, thread count); ``mask`` None: not pinned."""
    return ((f"taskset {mask} " if mask else "") + f"{shlex.quote(binary)} --graph={shlex.quote(model)} "
            f"--num_threads={threads} --warmup_runs={warmup} --num_runs={runs} --use_xnnpack=true")


_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                      rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_STATS = re.compile(rf"\bcount=(\d+)((?:\s+\w+={_NUM})*)")
_MEMORY = re.compile(rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                     rf"init=({_NUM}) overall=({_NUM})")


def parse_benchmark_output(text: str) -> dict:
    """``benchmark_model``'s log -> milliseconds: the timed runs' statistics (avg, std, min, max and,
    from newer builds, p5/median/p95), init, first inference, warm-up average, memory (MB).

    Both the older format (no percentiles) and the current one (``INFO:`` prefixes, p5/median/p95,
    averages in %g notation) are read. A run that reports no summary raises RuntimeError with the
    tool's first ERROR line."""
    summary = _SUMMARY.search(text)
    if not summary:
        errors = [ln.split("ERROR:", 1)[1].strip() for ln in text.splitlines() if "ERROR:" in ln]
        raise RuntimeError("benchmark_model reported no timings" + (f": {errors[0]}" if errors else
                           f" (last line: {text.strip().splitlines()[-1] if text.strip() else 'no output'})"))
    stats = []
    for m in _STATS.finditer(text):
        d = {"count": int(m[1])}
        d.update({k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", m[2])})
        stats.append(d)
    timed = stats[-1] if stats else {}
    us = 1e-3
    out = {"avg": float(summary[4]) * us, "init_ms": float(summary[1]) * us, "first_ms": float(summary[2]) * us,
           "warmup_avg_ms": float(summary[3]) * us, "runs": timed.get("count")}
    for src, dst in (("std", "std"), ("min", "min"), ("max", "max"), ("p5", "p5"), ("median", "p50"), ("p95", "p95")):
        if src in timed:
            out[dst] = timed[src] * us
    mem = _MEMORY.search(text)
    if mem:
        out["memory_mb"] = {"init": float(mem[1]), "overall": float(mem[2])}
    return out


def measure(models: list[Path], benchmark_model: str | Path, serial: str | None = None,
            threads: tuple[int, ...] = (1, 2, 4), warmup: int = 10, runs: int = 50, adb: str = "adb") -> dict:
    """Push ``benchmark_model`` and ``models``, run each at each thread count on the big cores.

    Returns {"device": description, "mask": hex or None (not pinned), "results": {model name: {threads: parsed}},
    "errors": {model name: one-line reason}} (a file is in one of the two)."""
    binary = Path(benchmark_model)
    if not binary.is_file():
        raise ValueError(f"--benchmark-model {binary}: no such file; get LiteRT's android_aarch64_benchmark_model "
                         "(see README, 'Benchmark on your phone or Raspberry Pi')")
    dev = Adb(serial, adb)
    dev.check_attached()
    dev.call([*dev.base(), "wait-for-device"], timeout=60)
    model_name = dev.call(dev.shell("getprop ro.product.model")).strip() or "android"
    abi = dev.call(dev.shell("getprop ro.product.cpu.abi")).strip()
    try:
        mask = big_core_mask(parse_cpu_freqs(dev.call(dev.shell(CPU_FREQS_CMD))))
        log.info("[adb] %s (%s), big cores mask %s", model_name, abi, mask)
        big = bin(int(mask, 16)).count("1")
        if max(threads) > big:  # more threads than pinned cores time the scheduler, not the model
            log.warning("[adb] %s has %d big core(s) (mask %s): --threads %d runs oversubscribed there",
                        model_name, big, mask, max(threads))
    except RuntimeError as e:  # a phone that hides cpufreq: measure anyway, on whichever cores the OS picks
        mask = None
        log.warning("[adb] %s (%s): %s; the runs are not pinned to the big cores", model_name, abi, e)
    dev.call(dev.shell(f"mkdir -p {DEVICE_DIR}"))
    remote_bin = f"{DEVICE_DIR}/benchmark_model"
    dev.call(dev.push(binary, remote_bin))
    dev.call(dev.shell(f"chmod 755 {remote_bin}"))
    results, errors = {}, {}
    for m in models:  # one file that fails (an op the phone's build lacks) fails its own row only
        remote_model = f"{DEVICE_DIR}/{m.name}"
        try:
            dev.call(dev.push(m, remote_model))
            results[m.name] = {}
            for t in threads:
                # benchmark_model prints its timings on stdout and its ERROR lines on stderr
                r = dev.run(dev.shell(benchmark_command(remote_bin, remote_model, t, mask, warmup, runs)))
                results[m.name][str(t)] = parse_benchmark_output(r.stdout + "\n" + r.stderr)
                log.info("[adb] %s @%d threads: avg %.2f ms", m.name, t, results[m.name][str(t)]["avg"])
        except RuntimeError as e:
            results.pop(m.name, None)
            errors[m.name] = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            log.info("[adb] %s failed: %s", m.name, errors[m.name])
    return {"device": f"adb {serial + ' ' if serial else ''}{model_name} ({abi})", "mask": mask, "results": results,
            "errors": errors}
