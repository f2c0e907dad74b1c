"""Damaged copies of an exported model file, each opened by `open_runtime` in a process of its own:
what happens to the caller (refused with a ValueError, ran, or the process died).
Usage: damaged_files.py MODEL_FILE N  (its manifest.json is copied beside every copy).
Seed i damages copy i: i % 3 == 0 zeroes a 4 KiB page, 1 fills one with random bytes, 2 changes
20 random bytes."""
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

src, n = Path(sys.argv[1]), int(sys.argv[2])
data = src.read_bytes()
OPEN = ("import sys, numpy as np\nfrom egeunet.runtimes import open_runtime\n"
        "try:\n    open_runtime(sys.argv[1]).predict(np.zeros((64, 64, 3), np.uint8)); print('RAN')\n"
        "except ValueError as e:\n    print('REFUSED', str(e).splitlines()[0][:160])\n")
outcomes = Counter()
with tempfile.TemporaryDirectory() as tmp:
    for seed in range(n):
        r, d, kind = random.Random(seed), bytearray(data), ("zeroed page", "random page", "20 bytes")[seed % 3]
        if seed % 3 == 2:
            for _ in range(20):
                d[r.randrange(8, len(d))] = r.randrange(256)
        else:
            o = r.randrange(0, len(d) - 4096) & ~4095
            d[o:o + 4096] = bytes(4096) if seed % 3 == 0 else bytes(r.randrange(256) for _ in range(4096))
        folder = Path(tmp) / str(seed)
        folder.mkdir()
        (folder / src.name).write_bytes(d)
        shutil.copy(src.parent / "manifest.json", folder)
        p = subprocess.run([sys.executable, "-c", OPEN, str(folder / src.name)], capture_output=True, text=True)
        said = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else f"process died (exit {p.returncode})"
        outcomes[(kind, said.split()[0] if p.stdout.strip() else "DIED")] += 1
        print(seed, kind, said, flush=True)
print(dict(outcomes))
