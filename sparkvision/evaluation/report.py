"""What people look at: the confusion matrix and training curves (PNG) and a small HTML report."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from sparkvision.platform.layout import EVAL_CONFUSION_PLOT, EVAL_CURVES_PLOT, EVAL_REPORT


def write_plots(out: Path, matrix: np.ndarray, labels: list[str], history_csv: Path) -> None:
    """confusion_matrix.png and training_curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7))
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if normalised[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out / EVAL_CONFUSION_PLOT, dpi=100)
    plt.close(fig)

    rows = _read_history(history_csv)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=f"train {key}")
        if rows and f"val_{key}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / EVAL_CURVES_PLOT, dpi=100)
    plt.close(fig)


def _read_history(history_csv: Path) -> list[dict]:
    import csv

    with open(history_csv) as handle:
        return list(csv.DictReader(handle))


def write_report(out: Path, metrics: dict) -> None:
    """report.html, a small self-contained report next to the plots in ``out``."""
    champion = metrics["champion"]
    champion_per_class = (champion or {}).get("per_class", {})
    champion_head = "<th>champion F1</th>" if champion_per_class else ""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
        f"<td>{m['f1']:.3f}</td><td>{m['support']}</td>"
        + (f"<td>{champion_per_class[label]['f1']:.3f}</td>" if label in champion_per_class else "")
        + "</tr>"
        for label, m in metrics["per_class"].items()
    )
    (
        out / EVAL_REPORT
    ).write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(metrics["run_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head><body>
<h1>Evaluation of {html.escape(metrics["run_id"])}</h1>
<p><b>{"BLESSED" if metrics["blessed"] else "NOT BLESSED"}</b>: {html.escape(metrics["reason"])}</p>
<p>Test accuracy {metrics["accuracy"]:.4f}, macro F1 {metrics["macro_f1"]:.4f} on {metrics["test_images"]} images
of {html.escape(metrics["dataset"])} {html.escape(metrics["version"])}.
{_champion_html(champion, metrics.get("champion_skipped"))}</p>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>{champion_head}</tr>{rows}</table>
<p><img src="{EVAL_CURVES_PLOT}" alt="training curves"></p>
<p><img src="{EVAL_CONFUSION_PLOT}" alt="confusion matrix"></p>
</body></html>
""")


def _champion_html(champion: dict | None, skipped: dict | None) -> str:
    if skipped:
        return html.escape(skipped["reason"]) + "."
    if not champion:
        return "No published champion to compare with."
    return (
        f"Champion (published version {champion['version']}) on the same test split: accuracy "
        f"{champion['accuracy']:.4f}, macro F1 {champion['macro_f1']:.4f}."
    )
