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


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a free loopback port; yields (ssh://user@127.0.0.1:port, ssh/scp args, the same
    server as ssh://user@[::1]:port, or None where this machine has no IPv6 loopback)."""
    _need(Path(SSHD).is_file() and shutil.which("ssh") and shutil.which("ssh-keygen") and shutil.which("scp"),
          "OpenSSH server and client needed: apt-get install -y openssh-server openssh-client")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port, user = _free_port(), getpass.getuser()
    ipv6 = _has_ipv6_loopback()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\n" + ("ListenAddress ::1\n" if ipv6 else "") +
        f"HostKey {d / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"AllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n"
                                   f"[::1]:{port} {host_pub[0]} {host_pub[1]}\n")
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
    yield f"ssh://{user}@127.0.0.1:{port}", args, f"ssh://{user}@[::1]:{port}" if ipv6 else None
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
    # scp reads [user@]host:path up to the first colon: an IPv6 host needs its brackets back
    v6 = SSHTarget.parse("ssh://me@[fe80::1]:2222")
    assert (v6.login, v6.scp_login, str(v6)) == ("me@fe80::1", "me@[fe80::1]", "ssh://me@[fe80::1]:2222")
    assert SSHTarget.parse(str(v6)) == v6 and SSHTarget.parse("ssh://[::1]").scp_login == "[::1]"


def test_remote_rows_match_a_local_run(sshd, tflite_exports, isic_root, tmp_path):
    """The acceptance test: fp32 and int8 measured through sshd equal a local run of the same file."""
    url, ssh_args, _ = sshd
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


def test_an_ipv6_address_copies_files_both_ways(sshd, tmp_path):
    """ssh://user@[::1]:port: the bench copies with scp, which needs the brackets ssh does not."""
    from egeunet.benchmarks.remote_ssh import RemoteSession

    _, ssh_args, url6 = sshd
    _need(url6 is not None, "no IPv6 loopback on this machine")
    (tmp_path / "payload.txt").write_text("through [::1]\n")
    with RemoteSession(SSHTarget.parse(url6), tuple(ssh_args)) as s:
        s.put(tmp_path / "payload.txt")
        s.run(f"cd {s.dir} && cp payload.txt back.txt")
        s.get("back.txt", tmp_path)
        remote_dir = s.dir
    assert (tmp_path / "back.txt").read_text() == "through [::1]\n"
    assert not Path(remote_dir).exists()  # the device's temporary folder is removed again


def test_a_file_that_fails_fails_only_its_own_row(sshd, tflite_exports, isic_root, tmp_path):
    """One file this machine cannot open (not a flatbuffer) and one the device's interpreter
    refuses: each is a failed row naming its reason; the third file is still measured."""
    url, ssh_args, _ = sshd
    exports = tmp_path / "exports"
    for precision in ("fp32", "fp16", "int8"):
        r, out = tflite_exports[precision]
        assert r.returncode == 0, r.stderr[-2000:]
        shutil.copytree(out, exports / f"tflite-{precision}")
    next((exports / "tflite-fp32").glob("*.tflite")).write_bytes(b"not a flatbuffer, 32 bytes long.")
    device_python = tmp_path / "device-python"  # a device whose LiteRT lacks an op of the fp16 file
    device_python.write_text("#!/bin/sh\ncase \"$*\" in *fp16.tflite*) echo \"device_runner: no kernel for "
                             f"DEQUANTIZE\" >&2; exit 1;; esac\nexec {sys.executable} \"$@\"\n")
    device_python.chmod(0o755)
    report_path = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--quick", "--no-export", "--exports", str(exports),
                        "--data", str(isic_root), "--threads", "1", "--formats", "tflite", "--device-images", "4",
                        "--remote", url, "--remote-python", str(device_python), *[f"--ssh-arg={a}" for a in ssh_args],
                        "--json", str(report_path)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    remote = {row["precision"]: row for row in json.loads(report_path.read_text())["rows"] if row["device"]}
    assert set(remote) == {"fp32", "fp16", "int8"}
    assert remote["fp32"]["status"] == "failed" and "not a .tflite file" in remote["fp32"]["reason"], remote["fp32"]
    assert remote["fp16"]["status"] == "failed" and "no kernel for DEQUANTIZE" in remote["fp16"]["reason"]
    assert remote["int8"]["status"] == "ok" and remote["int8"]["vs_host"]["bit_identical"], remote["int8"]


def test_a_hanging_ssh_is_an_error(tmp_path, monkeypatch):
    """A device that stops answering mid-run: a RuntimeError naming it, not subprocess.TimeoutExpired."""
    from egeunet.benchmarks.remote_ssh import RemoteSession

    (tmp_path / "ssh").write_text("#!/bin/sh\nexec sleep 30\n")
    (tmp_path / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(RuntimeError, match=r"ssh://pi@raspberrypi.local: `ssh` did not finish within 1 s"):
        RemoteSession(SSHTarget.parse("ssh://pi@raspberrypi.local"), timeout=1).run("true")


def test_device_routes_without_a_tflite_format_are_refused(tmp_path):
    """`--formats onnx --remote ...` used to measure the host rows, then add no device row and say
    nothing; now a one-line error before any work (--data points nowhere: reading it comes next)."""
    r = subprocess.run([sys.executable, "-m", "egeunet", "bench", "--exports", str(tmp_path), "--data",
                        str(tmp_path / "no-data"), "--formats", "torch", "onnx",
                        "--remote", "ssh://pi@raspberrypi.local"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: --remote runs .tflite files, and --formats torch onnx selects none"), r.stderr
