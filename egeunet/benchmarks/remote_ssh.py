"""``egeunet-bench --remote ssh://user@host[:port]``: measure .tflite files on any aarch64 Linux
(a Raspberry Pi) over SSH.

Copies ``device_runner.py``, each model and its prepared test inputs into a fresh temporary
folder on the device, runs the runner there per thread count (latency) and once for the
outputs, brings the JSON and outputs back and deletes the folder. The device needs python3,
numpy and ``ai-edge-litert`` (or ``tflite-runtime``); nothing of egeunet. Uses the system
``ssh``/``scp`` in batch mode (key login, no prompts).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.benchmarks import device_common as dc

log = logging.getLogger(__name__)

_URL = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\s\[\]]+)(?::(?P<port>\d+))?/?$")


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, url: str) -> "SSHTarget":
        m = _URL.match(url.strip())
        if not m:
            raise ValueError(f"{url!r} is not an SSH address: write ssh://user@host or ssh://user@host:port")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise ValueError(f"{url!r}: port {port} is out of range 1-65535")
        return cls(m["host"].strip("[]"), m["user"], port)

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_login(self) -> str:
        """``login`` as scp's ``[user@]host:path`` needs it: an IPv6 address in brackets (scp
        would otherwise take its first colon for the end of the host)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        return f"ssh://{self.scp_login}" + (f":{self.port}" if self.port != 22 else "")


_BATCH = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15"]


def ssh_command(target: SSHTarget, remote_cmd: str, ssh_args: tuple[str, ...] = ()) -> list[str]:
    return ["ssh", *_BATCH, "-p", str(target.port), *ssh_args, target.login, remote_cmd]


def scp_command(target: SSHTarget, sources: list[str], dest: str, ssh_args: tuple[str, ...] = ()) -> list[str]:
    return ["scp", "-q", *_BATCH, "-P", str(target.port), *ssh_args, *sources, dest]


def shell_word(path: str) -> str:
    """Quote ``path`` for the remote shell, keeping a leading ``~/`` meaning the remote home."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class SSHConnectionError(RuntimeError):
    """ssh itself failed (exit 255: unreachable, refused, key rejected): every file would fail alike."""


class RemoteSession:
    """One temporary folder on the device; ``with`` removes it again."""

    def __init__(self, target: SSHTarget, ssh_args: tuple[str, ...] = (), timeout: float = 1800) -> None:
        self.target, self.ssh_args, self.timeout = target, tuple(ssh_args), timeout
        self.dir: str | None = None

    def _subprocess(self, argv: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise RuntimeError(f"{argv[0]} not found: install the OpenSSH client (apt-get install openssh-client)") \
                from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.target}: `{argv[0]}` did not finish within {self.timeout:g} s") from None

    def run(self, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        r = self._subprocess(ssh_command(self.target, cmd, self.ssh_args))
        if r.returncode == 255:  # ssh's own failure: unreachable, refused, key rejected
            raise SSHConnectionError(f"{self.target}: cannot connect ({dc.last_line(r.stderr, 'ssh exit 255')}); "
                                     f"check that `ssh -p {self.target.port} {self.target.login} true` works "
                                     "without a password")
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.target}: `{cmd[:80]}` failed: {dc.last_line(r.stderr or r.stdout, 'no message')}")
        return r

    def put(self, *paths: Path) -> None:
        self._scp([str(p) for p in paths], f"{self.target.scp_login}:{self.dir}/")

    def get(self, name: str, dest: Path) -> None:
        self._scp([f"{self.target.scp_login}:{self.dir}/{name}"], str(dest))

    def _scp(self, sources: list[str], dest: str) -> None:
        r = self._subprocess(scp_command(self.target, sources, dest, self.ssh_args))
        if r.returncode != 0:
            raise RuntimeError(f"{self.target}: copy failed: {dc.last_line(r.stderr, 'scp failed')}")

    def __enter__(self) -> "RemoteSession":
        self.dir = self.run("mktemp -d /tmp/egeunet-bench.XXXXXX").stdout.strip()
        if not self.dir.startswith("/tmp/egeunet-bench."):
            raise RuntimeError(f"{self.target}: mktemp gave {self.dir!r}, not a temporary folder")
        return self

    def __exit__(self, *exc) -> None:
        if self.dir:
            self.run(f"rm -rf {shlex.quote(self.dir)}", check=False)


def check_device(session: RemoteSession, python: str) -> dict:
    """python3, numpy and a TFLite interpreter on the device, or a RuntimeError saying what to install."""
    probe = ("import json, platform, numpy\n"
             "try:\n    import ai_edge_litert as m\nexcept ImportError:\n    import tflite_runtime as m\n"
             "print(json.dumps({'machine': platform.machine(), 'numpy': numpy.__version__, 'backend': m.__name__}))")
    r = session.run(f"{shell_word(python)} -c {shlex.quote(probe)}", check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{session.target}: {python} cannot import numpy and ai_edge_litert/tflite_runtime "
                           f"({dc.last_line(r.stderr, 'no message')}); on the device: "
                           "pip install numpy ai-edge-litert (or tflite-runtime)")
    return json.loads(dc.last_line(r.stdout, "{}"))


def measure(target: SSHTarget, preps: list[dc.Prepared], threads: tuple[int, ...], runs: int, warmup: int,
            python: str = "python3", ssh_args: tuple[str, ...] = ()) -> list[dict]:
    """Per model: latency on the device at each thread count, and its raw outputs on every input.

    Returns [{"latency_ms": {threads: percentiles}, "outputs": ndarray, "device": facts}] in ``preps`` order;
    a file that fails on the device (an op its interpreter lacks, ...) gets {"error": one-line reason}
    instead, and the others are still measured. A device that cannot be reached or lacks python,
    numpy or an interpreter raises RuntimeError.
    """
    results = []
    with RemoteSession(target, ssh_args) as s, tempfile.TemporaryDirectory(prefix="egeunet-ssh-") as tmp:
        facts = check_device(s, python)
        log.info("[ssh] %s: %s, numpy %s, %s", target, facts.get("machine"), facts.get("numpy"), facts.get("backend"))
        s.put(dc.RUNNER)
        for i, prep in enumerate(preps):
            try:
                results.append(_measure_one(s, i, prep, Path(tmp), threads, runs, warmup, python))
            except SSHConnectionError:
                raise
            except (RuntimeError, OSError, ValueError) as e:
                reason = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
                log.info("[ssh] %s on %s failed: %s", prep.path.name, target, reason)
                results.append({"error": reason})
    return results


def _measure_one(s: RemoteSession, i: int, prep: dc.Prepared, tmp: Path, threads: tuple[int, ...], runs: int,
                 warmup: int, python: str) -> dict:
    x_name, y_name, model = f"x{i}.npy", f"y{i}.npy", prep.path.name
    np.save(tmp / x_name, prep.inputs)
    s.put(prep.path, tmp / x_name)
    base = f"cd {shlex.quote(s.dir)} && {shell_word(python)} device_runner.py --model {shlex.quote(model)} " \
           f"--inputs {x_name}"
    latency, device = {}, {}
    for t in threads:
        s.run(f"{base} --threads {t} --warmup {warmup} --runs {runs} --json t{i}_{t}.json")
        s.get(f"t{i}_{t}.json", tmp)
        device = dc.read_json(tmp / f"t{i}_{t}.json")
        latency[str(t)] = dc.percentiles(device.pop("times_ms"))
    s.run(f"{base} --threads {threads[0]} --warmup 0 --runs 0 --outputs {y_name}")
    s.get(y_name, tmp)
    log.info("[ssh] %s on %s: p50 %s ms", model, s.target, {t: round(v["p50"], 2) for t, v in latency.items()})
    return {"latency_ms": latency, "outputs": np.load(tmp / y_name), "device": device}
