"""Tests for ssd/ablation/stats.py and table.py on known numbers."""
import math

import pytest

from ssd.ablation.stats import Difference, summarize, t_quantile, verdict, welch_difference
from ssd.ablation.studies import STUDIES
from ssd.ablation.table import build_table, display_rows, markdown


def test_summary_mean_and_sample_std():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5 and s.std == pytest.approx(math.sqrt(5 / 3))
    assert summarize([7.0]) == type(s)(1, 7.0, None) and summarize([]).mean is None


def test_t_quantiles_match_the_tables():
    # Student's t 0.975 quantiles from the standard tables.
    for df, q in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (1e6, 1.9600)):
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile(0.4, 3)


def test_welch_interval_on_known_numbers():
    # a = [1, 2, 3], b = [4, 5, 7]: diff -10/3, se^2 = 1/3 + 7/9, Welch df = 3.4483 (by hand).
    d = welch_difference(summarize([1, 2, 3]), summarize([4, 5, 7]))
    se = math.sqrt(1 / 3 + 7 / 9)
    assert d.diff == pytest.approx(-10 / 3) and d.df == pytest.approx(3.44828, abs=1e-4)
    half = t_quantile(0.975, d.df) * se
    assert (d.low, d.high) == (pytest.approx(-10 / 3 - half), pytest.approx(-10 / 3 + half))
    assert half == pytest.approx(3.1209, abs=1e-3) and d.resolved  # t(0.975, 3.448) = 2.960
    assert welch_difference(summarize([1.0]), summarize([1.0, 2.0])).low is None


def test_verdicts():
    lower = Difference(-2.0, -3.0, -1.0, 4.0)
    noise = Difference(-2.0, -5.0, 1.0, 4.0)
    assert verdict(lower, -2.9) == "same direction as the paper"
    assert verdict(lower, 0.3) == "opposite"
    assert verdict(noise, -2.9) == "within noise at this scale"
    assert verdict(lower, None) == "resolved: lower than the full recipe"
    assert verdict(Difference(-2.0, None, None, None), -1.0) == "one seed: no interval"


def test_table_rows_from_results():
    study = STUDIES["zoomout"]
    results = {f"{v}-s{s}": {"variant": v, "seed": s, "AP": ap, "AP50": ap50, "AP_small": ap / 2}
               for v, s, ap, ap50 in (("full", 0, 0.30, 0.50), ("full", 1, 0.32, 0.52), ("full", 2, 0.31, 0.51),
                                      ("no_zoom_out", 0, 0.25, 0.40), ("no_zoom_out", 1, 0.26, 0.41),
                                      ("no_zoom_out", 2, 0.24, 0.42))}
    results["no_zoom_out-s3"] = {"variant": "no_zoom_out", "seed": 3, "failed": "exit 1"}
    full, nozoom = build_table(study, results)
    assert full["AP50"] == 51.0 and full["AP50_std"] == 1.0 and full["verdict"] == "reference" and full["n"] == 3
    assert full["AP50_diff"] is None
    assert nozoom["AP50_diff"] == -10.0 and nozoom["AP50_high"] < 0 and nozoom["paper_diff"] == -2.9
    assert nozoom["verdict"] == "same direction as the paper" and nozoom["failed"] == 1
    cells = display_rows([full, nozoom])
    assert cells[1]["AP50"] == "41.0 ± 1.0" and cells[1]["verdict"].endswith("(1 run(s) failed)")
    assert "Welch" in markdown([full, nozoom])
