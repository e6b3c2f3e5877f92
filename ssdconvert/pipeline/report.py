"""report.md + report.json (+ throughput.png) for `ssdconvert run`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ssdconvert.backends import REFERENCE
from ssdconvert.bench import THROUGHPUT_DEFINITION
from ssdconvert.fileio import atomic_path, write_json
from ssdconvert.formatting import markdown_table
from ssdconvert.pipeline import PipelineReport

AP_GATE = 0.002  # max |AP@[.5:.95] - ONNX Runtime FP32 AP| before a backend at the same precision is flagged


def _ap_verdict(backend: str, delta: float | None, report: PipelineReport) -> str:
    """Same precision on another runtime: |delta| <= AP_GATE. A lower precision or a release (`backend@tag`):
    it may lose up to the gate's max_map_drop AP points (agreement.Thresholds), as `quantize` allows."""
    if delta is None:
        return "n/a"
    if "@" not in backend:
        return "ok" if abs(delta) <= AP_GATE else "FLAGGED"
    return "ok" if _thresholds(report).allows_map_delta(delta) else "FLAGGED"


def _ap_limit(backend: str, report: PipelineReport) -> str:
    return (f"gate |delta| <= {AP_GATE}" if "@" not in backend
            else f"may drop {_thresholds(report).max_map_drop} AP points")


def accuracy_rows(report: PipelineReport) -> list[dict]:
    """Per backend: AP, AP50, difference from the ONNX Runtime FP32 AP, and the gate verdict.

    A backend that failed or was skipped before it was evaluated keeps its row, with no AP and its
    reason (`gate` FAILED or skipped).
    """
    results = {s.name.split(":", 1)[1]: s.data["stats"] for s in report.stages
               if s.name.startswith("eval:") and not s.skipped}
    reference = results.get(REFERENCE, {}).get("AP")
    rows = []
    for backend in dict.fromkeys(s.name.split(":", 1)[1] for s in report.stages if ":" in s.name):
        stats = results.get(backend)
        if stats is None:
            stopped = next((s for s in report.stages if s.name.endswith(f":{backend}") and s.skipped), None)
            if stopped is not None and not stopped.name.startswith("bench:"):
                rows.append({"backend": backend, "AP": None, "AP50": None, "delta_vs_onnxruntime": None,
                             "gate": "FAILED" if stopped.failed else "skipped",
                             "reason": f"{stopped.name}: {stopped.figure}", "unsupported": stopped.unsupported})
            continue
        delta = None if reference is None else stats["AP"] - reference
        gate = _ap_verdict(backend, delta, report)
        rows.append({"backend": backend, "AP": stats["AP"], "AP50": stats["AP50"], "delta_vs_onnxruntime": delta,
                     "gate": gate})
    return rows


def problems(report: PipelineReport) -> list[str]:
    """Why the run did not do what was asked, one line per backend: a stage failed, the accuracy gate
    flagged it, or (when the backends were named) it could not run here. Empty when all is well."""
    found = []
    for row in accuracy_rows(report):
        if row["gate"] == "FLAGGED":
            found.append(f"{row['backend']}: AP {row['AP']:.4f} differs from ONNX Runtime's by "
                         f"{row['delta_vs_onnxruntime']:+.4f} ({_ap_limit(row['backend'], report)})")
        elif row["gate"] == "FAILED" or (row["gate"] == "skipped" and report.required and not row["unsupported"]):
            found.append(f"{row['backend']}: {row['reason']}")
    for name, gate in gates(report).items():
        if not gate["passed"]:
            found.append(f"{name}: failed the accuracy gate against ONNX Runtime FP32: {'; '.join(gate['failures'])}"
                         f" (figures: {gate['path']}" + (f"; layer report: {gate['compare']}" if gate.get("compare")
                                                          else "") + ")")
    found += [f"{s.name.split(':', 1)[1]}: {s.name}: {s.figure}" for s in report.stages
              if s.name.startswith("bench:") and s.failed]
    return found


def unmeasured(report: PipelineReport) -> list[str]:
    """One line per precision asked for (`--precisions`) that no backend measured, with each backend's reason:
    a cell a backend cannot build is skipped, but a precision skipped everywhere was not done as asked."""
    from ssdconvert.pipeline import split_label

    cells: dict[str, list] = {}
    for s in report.stages:
        if s.name.startswith("compile:") and ":" not in s.name.split(":", 1)[1]:  # variants have their own
            cells.setdefault(split_label(s.name.split(":", 1)[1])[1], []).append(s)
    lines = []
    for precision in report.config.get("precisions") or ():
        found = cells.get(precision, [])
        if all(s.skipped and not s.failed for s in found):
            why = "; ".join(s.figure for s in found) or "no backend ran"
            lines.append(f"{precision} was measured on no backend: {why}")
    return lines


def failure_message(report: PipelineReport) -> str | None:
    """The run's one error line, or None when it did what was asked."""
    failed, missing = problems(report), unmeasured(report)
    parts = ([f"{len(failed)} backend(s) did not pass: {'; '.join(failed)}"] if failed else []) + missing
    return "; ".join(parts) or None


def gates(report: PipelineReport) -> dict[str, dict]:
    """Label -> the lower-precision gate's figures (agreement.AgreementReport.to_dict + path)."""
    return {s.name.split(":", 1)[1]: {**s.data, "path": s.outputs[0] if s.outputs else ""}
            for s in report.stages if s.name.startswith("gate:") and not s.skipped}


def precision_rows(report: PipelineReport) -> list[dict]:
    """Per label (backend x precision): best throughput, AP and its delta, and the gate's figures."""
    from ssdconvert.pipeline import split_label

    accuracy = {r["backend"]: r for r in accuracy_rows(report)}
    tput = throughput_by_backend(report)
    checked = gates(report)
    rows = []
    for name in dict.fromkeys([*accuracy, *tput]):
        backend, precision = split_label(name)
        gate = checked.get(name)
        outputs = [o for o in gate["outputs"] if o.get("equal") is None] if gate else []  # float outputs
        best = max(tput.get(name, {}).items(), key=lambda kv: kv[1], default=None)
        rows.append({
            "label": name, "backend": backend, "precision": precision,
            "best_throughput": best[1] if best else None, "best_batch": best[0] if best else None,
            "AP": accuracy.get(name, {}).get("AP"), "delta_vs_onnxruntime": accuracy.get(name, {}).get(
                "delta_vs_onnxruntime"),
            "min_cosine": min((o["cosine"] for o in outputs), default=None),
            "min_snr_db": min((float(o["snr_db"]) for o in outputs), default=None),
            "detection_ap": (gate.get("detections") or {}).get("ap") if gate else None,
            "gate": ("ok" if gate["passed"] else "FAILED") if gate else ("reference" if name == REFERENCE else "–"),
        })
    return rows


def throughput_by_backend(report: PipelineReport) -> dict[str, dict[int, float]]:
    return {s.name.split(":", 1)[1]: {int(b): t for b, t in s.data["throughput"].items()}
            for s in report.stages if s.name.startswith("bench:") and not s.skipped}


def where_it_ran(report: PipelineReport) -> dict[str, dict[int, str]]:
    """Label -> batch size -> `host device` of the bench cells a cluster ran (empty for a local run)."""
    return {s.name.split(":", 1)[1]: {int(b): w for b, w in s.data["where"].items()}
            for s in report.stages if s.name.startswith("bench:") and not s.skipped and s.data.get("where")}


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: PipelineReport, plot: Path | None, precision_plot: Path | None = None) -> str:
    """The report as markdown; `plot` and `precision_plot` are the PNGs beside it, if drawn."""
    label = " (random weights: meaningless)" if report.random_weights else ""
    lines = ["# ssdconvert run report", "", f"Model: `{report.config['model_name']}`; work dir "
             f"`{report.config['workdir']}`.", ""]
    if report.random_weights:
        lines += ["**Weights are seeded random (no --checkpoint): every accuracy figure below is meaningless; "
                  "it only proves that the pipeline runs and that backends agree.**", ""]
    lines += ["## Stages", "", markdown_table(
        ["stage", "status", "seconds", "result"],
        [(s.name, "skipped" if s.skipped else ("reused" if s.reused else "ran"), f"{s.seconds:.1f}", s.figure)
         for s in report.stages]), ""]
    acc = accuracy_rows(report)
    if acc:
        lines += ["## Accuracy (COCO AP@[.5:.95])", "", f"Gate: |AP − ONNX Runtime FP32 AP| ≤ {AP_GATE} at the same precision; a lower "
                  f"precision or a release (`backend@tag`) may lose {_thresholds(report).max_map_drop} AP points "
                  "(0.01 AP per point).", "",
                  markdown_table(["backend", "AP@[.5:.95]", "AP50", "Δ vs onnxruntime", "gate"],
                                 [(r["backend"], _fmt(r["AP"], ".4f") + (label if r["AP"] is not None else ""),
                                   _fmt(r["AP50"], ".4f"), _fmt(r["delta_vs_onnxruntime"], "+.4f"),
                                   r["gate"]) for r in acc]), ""]
    table = precision_rows(report)
    if _shows_precisions(table):
        lines += ["## Precision", "", f"Lower-precision gate against ONNX Runtime FP32 on the same inputs: "
                  f"{_thresholds(report).describe()}." + (" Seeded random weights: the gate figures describe "
                                                            "numerical agreement only." if report.random_weights
                                                            else ""), "",
                  markdown_table(["backend", "precision", "best samples/s (batch)", "AP", "Δ AP", "min cosine",
                                  "min SNR", "detection agreement AP", "gate"],
                                 [(r["backend"], r["precision"],
                                   f"{_fmt(r['best_throughput'], '.1f')} ({r['best_batch'] or '–'})",
                                   _fmt(r["AP"], ".4f"), _fmt(r["delta_vs_onnxruntime"], "+.4f"),
                                   _fmt(r["min_cosine"], ".5f"), _fmt(r["min_snr_db"], ".1f"),
                                   _fmt(r["detection_ap"], ".4f"), r["gate"]) for r in table]), ""]
        if precision_plot:
            lines += [f"![throughput against AP delta]({precision_plot.name})", ""]
    failed = problems(report) + unmeasured(report)
    if failed:
        lines += ["## Result: FAILED", "", *[f"- {p}" for p in failed], ""]
    tput = throughput_by_backend(report)
    if tput:
        sizes = sorted({b for rows in tput.values() for b in rows})
        lines += ["## Throughput (samples/s)", "", f"Definition: {THROUGHPUT_DEFINITION}", "",
                  markdown_table(["batch size", *tput], [(b, *(_fmt(tput[n].get(b), ".1f") for n in tput))
                                                         for b in sizes]), ""]
        if plot:
            lines += [f"![throughput]({plot.name})", ""]
    where = where_it_ran(report)
    if where:
        sizes = sorted({b for rows in where.values() for b in rows})
        lines += ["## Where each batch size ran (--cluster)", "", markdown_table(
            ["batch size", *where], [(b, *(where[n].get(b, "–") for n in where)) for b in sizes]), ""]
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(lines)


def _shows_precisions(table: list[dict]) -> bool:
    """Whether the run measured a lower precision (the report then has a precision section and plot)."""
    return any(r["precision"] != "fp32" and (r["best_throughput"] is not None or r["gate"] != "–") for r in table)


def _thresholds(report: PipelineReport):
    from ssdconvert.agreement import Thresholds

    return Thresholds(**(report.config.get("gate") or {}))


def plot_tradeoff(rows: list[dict], target: Path, random_weights: bool) -> Path | None:
    """Best throughput against the AP delta vs ONNX Runtime FP32 (left) and against the gate's detection
    agreement (right: what still tells models apart when seeded weights make every AP 0), one point per
    backend x precision; a cross marks a failed gate."""
    points = [r for r in rows if r["best_throughput"] is not None and r["delta_vs_onnxruntime"] is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key in zip(axes, ("delta_vs_onnxruntime", "detection_ap")):
        for r in points:
            x = 1.0 if key == "detection_ap" and r["gate"] == "reference" else r[key]
            if x is None:
                continue
            ax.scatter(x, r["best_throughput"], marker="x" if r["gate"] == "FAILED" else "o")
            ax.annotate(f"{r['backend']} {r['precision']}", (x, r["best_throughput"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].axvline(0, color="grey", lw=0.8)
    axes[0].set_xlabel("Δ AP@[.5:.95] vs ONNX Runtime FP32" + ("\n(random weights: meaningless)" if random_weights
                                                                else ""))
    axes[1].set_xlabel("detection agreement AP with ONNX Runtime FP32\n(1 = the same detections)")
    axes[0].set_ylabel("best samples/s (compute only)")
    fig.suptitle("Throughput against accuracy (x: failed the gate)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def plot_throughput(tput: dict[str, dict[int, float]], target: Path) -> Path | None:
    tput = {name: rows for name, rows in tput.items() if rows}  # a sweep where no batch size ran draws no line
    if not tput:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in tput.items():
        sizes = sorted(rows)
        ax.plot(sizes, [rows[b] for b in sizes], marker="o", label=name)
    ax.set_xscale("log", base=2)
    sizes = sorted({b for rows in tput.values() for b in rows})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_ylim(0, 1.12 * max(t for rows in tput.values() for t in rows.values()))
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples/s (compute only)")
    ax.set_title("Throughput per backend")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def write_report(report: PipelineReport, workdir: Path) -> tuple[Path, Path, str]:
    """Write report.md, report.json, throughput.png and precision.png into `workdir`; return paths and the
    markdown."""
    plot = plot_throughput(throughput_by_backend(report), workdir / "throughput.png")
    table = precision_rows(report)
    precision_plot = (plot_tradeoff(table, workdir / "precision.png", report.random_weights)
                      if _shows_precisions(table) else None)
    text = markdown(report, plot, precision_plot)
    md = workdir / "report.md"
    with atomic_path(md) as tmp:
        tmp.write_text(text)
    data = {"schema": "ssdconvert.run", "version": 1, "config": report.config,
            "random_weights": report.random_weights, "ap_gate": AP_GATE,
            "stages": [asdict(s) for s in report.stages], "accuracy": accuracy_rows(report),
            "precision": precision_rows(report), "gate_thresholds": asdict(_thresholds(report)),
            "problems": problems(report) + unmeasured(report),
            "throughput_definition": THROUGHPUT_DEFINITION,
            "throughput": {k: {str(b): t for b, t in v.items()} for k, v in throughput_by_backend(report).items()},
            "plot": str(plot) if plot else None, "notes": report.notes}
    return md, write_json(workdir / "report.json", data), text
