"""Size and parity of every exported variant, read from the manifests under a folder.

    python -m egeunet.benchmarks.export_table exports/

prints a Markdown table (format · file · bytes · parity vs PyTorch fp32) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(root: Path) -> list[dict]:
    out = []
    for man_path in sorted(root.glob("*/manifest.json")):
        m = json.loads(man_path.read_text())
        p = m.get("parity", {})
        out.append({"format": f"{m['target']} {m['precision']}", "file": m["file"], "bytes": m["bytes"],
                    "input": f"{m['io']['input']['dtype']} {m['io']['input']['values']}",
                    "iou": p.get("iou"), "dice": p.get("dice"), "max_abs_prob": p.get("max_abs_prob"),
                    # parity on synthetic images (no data folder at export time) must not pass for test images
                    "n": f"{p.get('n_images')} synthetic" if p.get("images") == "synthetic" else p.get("n_images"),
                    "note": p.get("skipped", "")})
    return out


def markdown(table: list[dict]) -> str:
    lines = ["| format | file | bytes | input | mask IoU vs torch | Dice vs torch | max \\|Δprob\\| | images |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in table:
        if r["iou"] is None:
            lines.append(f"| {r['format']} | {r['file']} | {r['bytes']:,} | {r['input']} | — | — | — | {r['note']} |")
        else:
            lines.append(f"| {r['format']} | {r['file']} | {r['bytes']:,} | {r['input']} | {r['iou']:.4f} | "
                         f"{r['dice']:.4f} | {r['max_abs_prob']:.1e} | {r['n']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", default="exports")
    a = p.parse_args(argv)
    table = rows(Path(a.root))
    if not table:
        print(f"no */manifest.json under {a.root}")
        return 1
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
