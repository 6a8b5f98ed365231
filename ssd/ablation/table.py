"""A study's table in the paper's form, from its runs' results (`ssd.ablation.runner`).

One row per variant: what changed; AP, AP50, AP_small as mean ± std over the seeds
(percent, as the paper's tables); the AP50 difference from the full recipe with its 95%
Welch interval (`ssd.ablation.stats`); the paper's difference; and the verdict. AP50 is
the one compared with the paper: VOC2007 mAP is AP at IoU 0.5. No torch import.
"""
from __future__ import annotations

from ssd.ablation.stats import METHOD, summarize, verdict, welch_difference
from ssd.ablation.studies import Study

METRICS = ("AP", "AP50", "AP_small")
COMPARED = "AP50"  # the metric the verdict compares with the paper's VOC mAP


def _values(results: dict, variant: str, metric: str) -> list[float]:
    """Percent values of `metric` over the finished runs of `variant`."""
    return [100.0 * r[metric] for r in results.values()
            if r.get("variant") == variant and isinstance(r.get(metric), (int, float))]


def _round(x, digits: int = 2):
    return None if x is None else round(x, digits)


def build_table(study: Study, results: dict) -> list[dict]:
    """Rows of the study's table (module docstring) from {run name: {"variant", "seed",
    "AP", "AP50", "AP_small"} or {"failed": reason}}. Values in percent."""
    full_name = study.variants[0].name
    rows = []
    for v in study.variants:
        row = {"variant": v.name, "what": v.what, "paper": v.paper, "paper_diff": study.paper_diff(v),
               "failed": sum(1 for r in results.values() if r.get("variant") == v.name and "failed" in r)}
        for metric in METRICS:
            s = summarize(_values(results, v.name, metric))
            row[metric], row[f"{metric}_std"] = _round(s.mean), _round(s.std)
            d = welch_difference(s, summarize(_values(results, full_name, metric)))
            if v.name == full_name:  # the reference: no difference to show
                d = type(d)(None, None, None, None)
            row[f"{metric}_diff"], row[f"{metric}_low"], row[f"{metric}_high"] = (
                _round(d.diff), _round(d.low), _round(d.high))
            if metric == COMPARED:
                row["n"] = s.n  # finished seeds
                row["verdict"] = "reference" if v.name == full_name else verdict(d, row["paper_diff"])
        rows.append(row)
    return rows


def _pm(mean, std) -> str:
    if mean is None:
        return "-"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _interval(row: dict, metric: str) -> str:
    if row[f"{metric}_diff"] is None:
        return "-"
    if row[f"{metric}_low"] is None:
        return f"{row[f'{metric}_diff']:+.1f}"
    return f"{row[f'{metric}_diff']:+.1f} [{row[f'{metric}_low']:+.1f}, {row[f'{metric}_high']:+.1f}]"


def display_rows(rows: list[dict]) -> list[dict]:
    """The table as text cells, column names as a reader sees them."""
    out = []
    for r in rows:
        out.append({
            "variant": r["variant"], "what changed": r["what"], "seeds": r["n"],
            "AP": _pm(r["AP"], r["AP_std"]), "AP50": _pm(r["AP50"], r["AP50_std"]),
            "AP_small": _pm(r["AP_small"], r["AP_small_std"]),
            "AP50 diff [95% CI]": _interval(r, "AP50"), "AP_small diff [95% CI]": _interval(r, "AP_small"),
            "paper mAP": "-" if r["paper"] is None else f"{r['paper']:.1f}",
            "paper diff": "-" if r["paper_diff"] is None else f"{r['paper_diff']:+.1f}",
            "verdict": r["verdict"] + (f" ({r['failed']} run(s) failed)" if r["failed"] else ""),
        })
    return out


def markdown(rows: list[dict]) -> str:
    """The table as Markdown (for docs/paper-lab.md and the CLI), with the method below it."""
    cells = display_rows(rows)
    if not cells:
        return ""
    head = list(cells[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c[h]) for h in head) + " |" for c in cells]
    return "\n".join(lines) + f"\n\nPercent. {METHOD}; verdict on AP50 against the paper's VOC2007 mAP."
