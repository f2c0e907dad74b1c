"""Check (issue #7): does the split step's idle helper process slow the benchmark's reference?
The throughput benchmark's harness (`train_throughput._Variants`) with the reference variant
alone, then with the reference and `egeunet-train` (whose split step leaves a helper process
waiting while the reference runs), then alone again; reference img/s per round (10 steps).

    python docs/experiments/2026-11-27/reference_alone.py [ROUNDS]
"""
import statistics
import sys

from egeunet.benchmarks import train_throughput as tt
from egeunet.data import resolve_data_root

if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = str(resolve_data_root(None))
    for names in (["reference eager"], ["reference eager", "egeunet-train"], ["reference eager"]):
        v = tt._Variants(names, threads=2, batch=8, size=256, root=root, n_images=64, warmup=2)
        try:
            for n in names:
                v.ask(n)
            for n in names:
                v.ask(n, "setup")
            rates = {n: [] for n in names}
            for _ in range(rounds):
                for n in names:
                    rates[n].append(80 / v.ask(n, "run", 10)[0])
        finally:
            v.close()
        print(" + ".join(names) + ": " + "; ".join(
            f"{n} {statistics.median(r):.1f} img/s ({', '.join(f'{x:.1f}' for x in r)})" for n, r in rates.items()),
            flush=True)
