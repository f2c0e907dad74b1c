"""PNG plots for an ``egeunet-bench`` report (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int) -> None:
    """``fig`` as a PNG at ``path``, published whole or not at all: savefig straight to the name
    left a truncated file (over the last run's good one) when interrupted or failing."""
    import io

    from egeunet.model.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def _ok_rows(report: dict) -> list[dict]:
    return [r for r in report["rows"] if r["latency_ms"] and r["dice_pooled"] is not None]


def _nothing_measured(ax) -> None:
    ax.text(0.5, 0.5, "no row was measured (see the table's reasons)", ha="center", va="center",
            transform=ax.transAxes, fontsize=9)


def latency_vs_size(report: dict, path: Path) -> None:
    plt = _plt()
    t = str(report["threads"][0])
    fig, ax = plt.subplots(figsize=(6, 4))
    markers = "osD^vP*Xh<>"
    for k, r in enumerate(_ok_rows(report)):  # a legend, not labels: files of similar size would overlap
        ax.scatter(r["size_bytes"] / 1000, r["latency_ms"][t]["p50"], s=45, marker=markers[k % len(markers)],
                   label=f"{r['format']} {r['precision']}")
    if _ok_rows(report):
        ax.legend(fontsize=8, loc="best")
    else:
        _nothing_measured(ax)
    ax.set_xlabel("file size (kB)")
    ax.set_ylabel(f"latency p50 (ms, {t} thread{'s' if t != '1' else ''})")
    ax.set_title(report["machine"]["cpu"], fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=110)
    plt.close(fig)


def dice_per_format(report: dict, path: Path) -> None:
    plt = _plt()
    rows = _ok_rows(report)
    names = [f"{r['format']}\n{r['precision']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(x - 0.2, [r["dice_pooled"] for r in rows], 0.4, label="test Dice (pooled)")
    ax.bar(x + 0.2, [r["dice_vs_torch"] for r in rows], 0.4, label="Dice vs PyTorch fp32 masks")
    ax.set_xticks(x, names, fontsize=8)
    if rows:
        lo = min(min(r["dice_pooled"], r["dice_vs_torch"]) for r in rows)
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.legend(fontsize=8)
    else:  # every row failed (Core ML on Linux, a missing runtime): the report must still be written
        _nothing_measured(ax)
    ax.set_title(f"{report['n_images']} test images", fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=110)
    plt.close(fig)


def overlay_grid(report: dict, images: np.ndarray, masks_by_row: dict[str, list[np.ndarray]], path: Path) -> None:
    """Rows: formats; columns: test images; the mask contour drawn over each image."""
    from egeunet.predict import overlay

    plt = _plt()
    keys = list(masks_by_row)
    fig, axes = plt.subplots(len(keys), len(images), figsize=(1.6 * len(images), 1.6 * len(keys)), squeeze=False)
    for i, key in enumerate(keys):
        for j, img in enumerate(images):
            axes[i, j].imshow(overlay(img, masks_by_row[key][j]))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(key, fontsize=8)
    fig.suptitle("masks per format (ISIC 2018 test images, CC BY-NC 4.0)", fontsize=8)
    fig.tight_layout()
    _save(fig, path, dpi=80)
    plt.close(fig)


def write_plots(report: dict, out: Path, images: np.ndarray, masks_by_row: dict[str, list[np.ndarray]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "latency_vs_size.png", out / "dice_per_format.png", out / "overlays.png"]
    latency_vs_size(report, paths[0])
    dice_per_format(report, paths[1])
    overlay_grid(report, images, masks_by_row, paths[2])
    return paths
