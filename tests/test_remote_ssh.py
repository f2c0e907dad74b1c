"""egeunet-bench --remote against a real OpenSSH server started on 127.0.0.1 for the test
(throwaway host and user keys, a temporary sshd_config, `sshd -D -f`). The "device" is this
machine and its python is the current one, so the remote rows must equal a local run exactly."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egeunet.benchmarks.remote_ssh import SSHTarget, scp_command, shell_word, ssh_command

pytest.importorskip("onnx", reason="the bench reads exported files: pip install -e '.[export]'")

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _need(tool_ok: bool, reason: str) -> None:
    if not tool_ok:
        if os.environ.get("EGEUNET_REQUIRE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a free loopback port; yields (ssh://user@127.0.0.1:port, ssh/scp args)."""
    _need(Path(SSHD).is_file() and shutil.which("ssh") and shutil.which("ssh-keygen") and shutil.which("scp"),
          "OpenSSH server and client needed: apt-get install -y openssh-server openssh-client")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port, user = _free_port(), getpass.getuser()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    for _ in range(100):
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    args = ["-F", "/dev/null", "-i", str(d / "user_key"), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={d / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes"]
    yield f"ssh://{user}@127.0.0.1:{port}", args
    proc.terminate()
    proc.wait(timeout=10)


def test_ssh_target_parsing():
    t = SSHTarget.parse("ssh://pi@raspberrypi.local:2222")
    assert (t.user, t.host, t.port, str(t)) == ("pi", "raspberrypi.local", 2222, "ssh://pi@raspberrypi.local:2222")
    assert SSHTarget.parse("ssh://10.0.0.7").port == 22 and SSHTarget.parse("ssh://10.0.0.7").user is None
    assert SSHTarget.parse("ssh://me@[fe80::1]:22").host == "fe80::1"
    for bad in ("pi@host", "http://pi@host", "ssh://pi@host:70000", "ssh://pi@host:x", "ssh://"):
        with pytest.raises(ValueError, match="ssh://"):
            SSHTarget.parse(bad)
    assert ssh_command(t, "true", ("-i", "k"))[-4:] == ["-i", "k", "pi@raspberrypi.local", "true"]
    assert "-P" in scp_command(t, ["a"], "pi@raspberrypi.local:/tmp/") and "2222" in scp_command(t, ["a"], "x:")
    assert shell_word("~/litert/bin/python") == '"$HOME"/litert/bin/python'
    assert shell_word("/opt/my env/python3") == "'/opt/my env/python3'"


def test_remote_rows_match_a_local_run(sshd, tflite_exports, isic_root, tmp_path):
    """The acceptance test: fp32 and int8 measured through sshd equal a local run of the same file."""
    url, ssh_args = sshd
    exports = tmp_path / "exports"
    exports.mkdir()
    for precision in ("fp32", "int8"):
        r, out = tflite_exports[precision]
        assert r.returncode == 0, r.stderr[-2000:]
        (exports / f"tflite-{precision}").symlink_to(out)
    report_path = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--no-export", "--exports", str(exports),
                        "--data", str(isic_root), "--threads", "1", "2", "--formats", "tflite",
                        "--remote", url, "--remote-python", sys.executable, *[f"--ssh-arg={a}" for a in ssh_args],
                        "--json", str(report_path), "--md", str(tmp_path / "bench.md")],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(report_path.read_text())["rows"]
    local = {row["precision"]: row for row in rows if row["device"] is None}
    remote = {row["precision"]: row for row in rows if row["device"]}
    assert set(local) == set(remote) == {"fp32", "int8"}
    for precision, row in remote.items():
        assert row["status"] == "ok", row["reason"]
        assert row["device"].startswith(url) and row["n_images"] == 16
        # Same file, same interpreter, same inputs: bit-identical outputs, hence identical scores.
        assert row["vs_host"]["bit_identical"] and row["vs_host"]["max_abs_diff"] == 0.0
        assert row["vs_host"]["mask_iou"] == 1.0 and row["vs_host"]["images"] == 16
        for key in ("dice_pooled", "dice_per_image", "iou_vs_torch", "dice_vs_torch"):
            assert row[key] == pytest.approx(local[precision][key], abs=1e-12), key
        assert set(row["latency_ms"]) == {"1", "2"}
        lat = row["latency_ms"]["1"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["runs"] == 10
    md = (tmp_path / "bench.md").read_text()
    assert url in md and "Devices against this machine" in md


def test_unreachable_host_is_a_failed_row_with_the_reason(tflite_exports, isic_root, tmp_path):
    from egeunet.benchmarks import device_common as dc
    from egeunet.benchmarks.remote_ssh import measure

    _need(bool(shutil.which("ssh")), "OpenSSH client needed: apt-get install -y openssh-client")
    r, out = tflite_exports["fp32"]
    assert r.returncode == 0, r.stderr[-2000:]
    prep = dc.prepare(next(out.glob("*.tflite")), [__import__("numpy").zeros((64, 64, 3), "uint8")])
    with pytest.raises(RuntimeError, match=r"ssh://root@127.0.0.1:\d+: cannot connect"):
        measure(SSHTarget("127.0.0.1", "root", _free_port()), [prep], (1,), 1, 0,
                ssh_args=("-F", "/dev/null", "-o", "ConnectTimeout=3"))
