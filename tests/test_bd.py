"""BD numbers must equal the bjontegaard package; malformed curves must fail clearly."""

from __future__ import annotations

import bjontegaard
import numpy as np
import pandas as pd
import pytest

from discover.bd import bd
from discover.cli import main
from discover.errors import MetricInputError

# (anchor rate, anchor psnr, test rate, test psnr): realistic, shifted, different point counts
CURVES = [
    (
        [0.1, 0.2, 0.4, 0.8],
        [28.0, 30.5, 33.2, 36.1],
        [0.08, 0.17, 0.35, 0.72],
        [28.3, 30.9, 33.5, 36.4],
    ),
    (
        [0.12, 0.25, 0.5, 1.0, 2.0],
        [27.1, 29.9, 32.8, 35.6, 38.9],
        [0.1, 0.21, 0.44, 0.9, 1.8],
        [26.5, 29.1, 32.0, 35.2, 38.0],
    ),
    (
        [0.05, 0.11, 0.23, 0.47, 0.95],
        [0.90, 0.94, 0.965, 0.98, 0.99],
        [0.06, 0.12, 0.25, 0.5],
        [0.91, 0.945, 0.97, 0.983],
    ),
]


# Published reference points: two JCT-VC anchor/test pairs of JCTVC-E137 (four QPs each, rate
# in kbit/s, PSNR in dB) and their BD-rate, the values Netflix's VMAF validates its PCHIP
# calculator against (python/test/bd_rate_calculator_test.py, BDrateCalculatorJCTVCTest:
# fractions there, % here).
JCTVC_E137 = [
    (
        [(108048.8736, 43.6471), (61279.976, 40.3953), (33905.6656, 37.247), (18883.6928, 34.2911)],
        [
            (108061.2784, 43.6768),
            (61299.9936, 40.4232),
            (33928.7472, 37.2761),
            (18910.912, 34.3147),
        ],
        -0.465215420752807,
    ),
    (
        [(40433.8848, 37.5761), (7622.7456, 35.3756), (2394.488, 33.8977), (1017.6184, 32.0603)],
        [(40370.12, 37.5982), (7587.0024, 35.4025), (2390.0944, 33.9194), (1017.0984, 32.0822)],
        -1.8779823450567612,
    ),
]


@pytest.mark.parametrize("case", range(len(JCTVC_E137)))
def test_pchip_bd_rate_reproduces_the_published_jctvc_value(case):
    anchor, test, published = JCTVC_E137[case]
    (ar, am), (tr, tm) = zip(*anchor, strict=True), zip(*test, strict=True)
    assert bd(ar, am, tr, tm, method="pchip").bd_rate == pytest.approx(published, abs=1e-9)
    # the value is PCHIP's: Akima and VCEG-M33's cubic polynomial give others
    for method in ("akima", "cubic"):
        assert bd(ar, am, tr, tm, method=method).bd_rate != pytest.approx(published, abs=1e-6)


@pytest.mark.parametrize("method", ["pchip", "cubic", "akima"])
@pytest.mark.parametrize("curve", range(len(CURVES)))
def test_bd_equals_bjontegaard(method, curve):
    ar, am, tr, tm = CURVES[curve]
    ours = bd(ar, am, tr, tm, method=method)
    ref_rate = bjontegaard.bd_rate(ar, am, tr, tm, method=method, require_matching_points=False)
    ref_q = bjontegaard.bd_psnr(ar, am, tr, tm, method=method, require_matching_points=False)
    assert ours.bd_rate == pytest.approx(ref_rate, rel=1e-12, abs=1e-12)
    assert ours.bd_metric == pytest.approx(ref_q, rel=1e-12, abs=1e-12)
    assert ours.method == method


def test_bd_is_order_independent_and_sign_is_meaningful():
    ar, am, tr, tm = CURVES[0]
    shuffled = bd(ar[::-1], am[::-1], tr[::-1], tm[::-1])
    assert shuffled.bd_rate == pytest.approx(bd(ar, am, tr, tm).bd_rate)
    assert shuffled.bd_rate < 0  # test curve is better: fewer bits for the same PSNR


def test_lower_is_better_metrics_negate_consistently():
    ar = [0.1, 0.2, 0.4, 0.8]
    lpips_a = [0.40, 0.30, 0.20, 0.12]
    lpips_t = [0.35, 0.26, 0.17, 0.10]  # better (lower) at every rate
    r = bd(ar, lpips_a, ar, lpips_t, higher_is_better=False)
    ref = bjontegaard.bd_psnr(
        ar,
        [-v for v in lpips_a],
        ar,
        [-v for v in lpips_t],
        method="pchip",
        require_matching_points=False,
    )
    assert r.bd_metric == pytest.approx(-ref)
    assert r.bd_metric < 0 and r.bd_rate < 0


@pytest.mark.parametrize(
    "rate,metric,needle",
    [
        ([0.1, 0.2, 0.4], [28, 30, 33], "at least 4"),
        ([0.1, 0.2, 0.4, 0.8], [28, 31, 30, 36], "not monotone"),
        ([0.1, 0.2, 0.2, 0.8], [28, 30, 33, 36], "share the rate"),
        ([0.1, 0.2, 0.4, 0.8], [28, np.nan, 33, 36], "NaN"),
        ([0.0, 0.2, 0.4, 0.8], [28, 30, 33, 36], "positive"),
    ],
)
def test_malformed_curves_are_rejected_with_the_curve_named(rate, metric, needle):
    good = CURVES[0]
    with pytest.raises(MetricInputError, match=needle) as err:
        bd(good[0], good[1], rate, metric, test_name="mycodec")
    assert "mycodec" in str(err.value)


def _write(path, bpp, psnr):
    pd.DataFrame({"bpp": bpp, "psnr": psnr}).to_csv(path, index=False)
    return str(path)


def test_cli_bd_prints_the_reference_values(tmp_path, capsys):
    ar, am, tr, tm = CURVES[1]
    a = _write(tmp_path / "a.csv", ar, am)
    t = _write(tmp_path / "t.csv", tr, tm)
    assert main(["bd", "--anchor", a, "--test", t, "--method", "akima"]) == 0
    out = capsys.readouterr().out
    ref = bjontegaard.bd_rate(ar, am, tr, tm, method="akima", require_matching_points=False)
    assert f"BD-rate: {ref:.4f} %" in out
    assert "method: akima" in out


@pytest.mark.parametrize(
    "case,needle",
    [
        ("missing_column", "missing column"),
        ("non_monotone", "not monotone"),
        ("few_points", "at least 4"),
        ("no_file", "no such file"),
    ],
)
def test_cli_bd_malformed_input_exits_nonzero(tmp_path, capsys, case, needle):
    a = _write(tmp_path / "a.csv", *CURVES[0][:2])
    if case == "missing_column":
        pd.DataFrame({"bpp": [0.1, 0.2, 0.3, 0.4]}).to_csv(tmp_path / "t.csv", index=False)
        t = str(tmp_path / "t.csv")
    elif case == "non_monotone":
        t = _write(tmp_path / "t.csv", [0.1, 0.2, 0.4, 0.8], [30, 29, 33, 35])
    elif case == "few_points":
        t = _write(tmp_path / "t.csv", [0.1, 0.2, 0.4], [30, 31, 33])
    else:
        t = str(tmp_path / "absent.csv")
    # --envelope none: the pipeline's default (pareto) would take the non-monotone curve's front
    assert main(["bd", "--anchor", a, "--test", t, "--envelope", "none"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "error" in err


# A task-accuracy curve: saturates at the clean score, one noisy dip (0.9375 after 1.0).
TOP1_RATE = [0.28, 0.47, 0.86, 1.59, 2.71, 3.5]
TOP1 = [0.75, 0.875, 0.9375, 1.0, 0.9375, 1.0]


def test_pareto_envelope_is_bjontegaard_on_the_front_and_names_dropped_points():
    ar, am = [0.2, 0.3, 0.5, 0.9, 1.6], [0.6, 0.7, 0.8, 0.9, 0.95]
    r = bd(ar, am, TOP1_RATE, TOP1, envelope="pareto", test_name="objects/jpeg/top1")
    kept = [0, 1, 2, 3]  # 0.9375 at 2.71 and 1.0 at 3.5 are not above 1.0 at 1.59
    tr = [TOP1_RATE[i] for i in kept]
    tm = [TOP1[i] for i in kept]
    ref = bjontegaard.bd_rate(ar, am, tr, tm, method="pchip", require_matching_points=False)
    assert r.bd_rate == pytest.approx(ref, rel=1e-12)
    assert "objects/jpeg/top1: 2 of 6 points off the Pareto front dropped" in r.note
    assert "0.9375 at 2.71" in r.note and "1 at 3.5" in r.note
    with pytest.raises(MetricInputError, match="not monotone"):
        bd(ar, am, TOP1_RATE, TOP1, envelope="none")


def test_pareto_envelope_leaves_monotone_curves_alone():
    for ar, am, tr, tm in CURVES:
        a, b = bd(ar, am, tr, tm), bd(ar, am, tr, tm, envelope="pareto")
        assert (a.bd_rate, a.bd_metric, a.note) == (b.bd_rate, b.bd_metric, b.note)


def test_pareto_envelope_of_a_lower_is_better_curve_reports_values_in_its_own_sign():
    rate = [0.1, 0.2, 0.4, 0.8, 1.6]
    fid = [40.0, 30.0, 31.0, 20.0, 10.0]  # 31 at 0.4 is worse than 30 at 0.2
    anchor = [45.0, 35.0, 25.0, 15.0, 8.0]
    r = bd(rate, anchor, rate, fid, higher_is_better=False, envelope="pareto", test_name="t")
    assert "31 at 0.4" in r.note
    ref = bjontegaard.bd_rate(
        rate,
        [-v for v in anchor],
        [0.1, 0.2, 0.8, 1.6],
        [-40.0, -30.0, -20.0, -10.0],
        method="pchip",
        require_matching_points=False,
    )
    assert r.bd_rate == pytest.approx(ref, rel=1e-12)


def test_too_few_points_on_the_front_and_disjoint_curves_are_not_computed():
    flat = [0.6, 0.63, 0.62, 0.63, 0.63]  # front: 0.6, 0.63
    with pytest.raises(MetricInputError, match="2 points on the Pareto front") as err:
        bd(
            TOP1_RATE[:5],
            TOP1[:5],
            [0.3, 0.5, 0.9, 1.5, 2.8],
            flat,
            envelope="pareto",
            test_name="scenes/avif/bbox_AP",
        )
    assert "scenes/avif/bbox_AP" in str(err.value)
    low = [0.10, 0.17, 0.21, 0.25]  # a codec whose accuracy never reaches the anchor's range
    with pytest.raises(MetricInputError, match="do not overlap in quality"):
        bd(TOP1_RATE[:4], TOP1[:4], [0.02, 0.03, 0.06, 0.09], low, envelope="pareto")


def test_cli_bd_envelope_option(tmp_path, capsys):
    a = _write(tmp_path / "a.csv", [0.2, 0.3, 0.5, 0.9, 1.6], [0.6, 0.7, 0.8, 0.9, 0.95])
    t = _write(tmp_path / "t.csv", TOP1_RATE, TOP1)
    assert main(["bd", "--anchor", a, "--test", t, "--envelope", "pareto"]) == 0
    assert "points off the Pareto front dropped" in capsys.readouterr().out
    assert main(["bd", "--anchor", a, "--test", t, "--envelope", "none"]) == 2
    assert "not monotone" in capsys.readouterr().err
    # without the option: the pipeline's default (bd.envelope: pareto), the same number
    assert main(["bd", "--anchor", a, "--test", t]) == 0
    assert "envelope: pareto" in capsys.readouterr().out


def test_min_front_points_counts_the_points_left_on_the_front():
    ar, am = [0.2, 0.3, 0.5, 0.9, 1.6], [0.6, 0.7, 0.8, 0.9, 0.95]
    tr, tm = [0.25, 0.4, 0.7, 1.2], [0.65, 0.64, 0.85, 0.93]  # 3 on the front
    r = bd(ar, am, tr, tm, envelope="pareto")
    ref = bjontegaard.bd_rate(
        ar, am, [0.25, 0.7, 1.2], [0.65, 0.85, 0.93], method="pchip", require_matching_points=False
    )
    assert r.bd_rate == pytest.approx(ref, rel=1e-12)
    with pytest.raises(MetricInputError, match="3 points on the Pareto front .* at least 4"):
        bd(ar, am, tr, tm, envelope="pareto", min_front_points=4)
