"""The claims ledger: rules that must pass and must fail, controls, pins, rendering, bad input."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from jaxpapers import claims
from jaxpapers.claims import ClaimFailed, Ledger, at_least, at_most, paired_bound, sign_count, within


@pytest.fixture(autouse=True)
def _enforced(monkeypatch):
    monkeypatch.delenv(claims.DRY_RUN_ENV, raising=False)
    monkeypatch.delenv(claims.ENFORCE_ENV, raising=False)
    monkeypatch.delenv(claims.LOG_ENV, raising=False)


def naive_t_bound(d, level=0.95):
    d = np.asarray(d, float)
    n = len(d)
    se = np.std(d, ddof=1) / math.sqrt(n)
    return d.mean() - stats.t.ppf(level, n - 1) * se


def test_paired_bound_matches_a_hand_computed_t_bound():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 8), rng.normal(0.0, 1.0, 8)
    dec = paired_bound(a, b)
    assert dec.statistic == pytest.approx(naive_t_bound(a - b))
    assert dec.estimate == pytest.approx(np.mean(a - b))
    lo, hi = dec.interval
    ci = stats.t.interval(0.95, 7, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert (lo, hi) == pytest.approx(ci)
    assert dec.comparative and dec.n == 8


def test_paired_bound_passes_a_real_effect_and_fails_without_one():
    d_real = np.array([1.2, 0.9, 1.4, 1.1, 0.8])
    assert paired_bound(d_real).passed
    d_null = np.array([0.3, -0.2, 0.5, -0.4, 0.1])
    assert not paired_bound(d_null).passed
    # a margin raises the bar
    assert not paired_bound(d_real, margin=1.0).passed


def test_paired_bound_less_direction_keeps_the_sign_of_the_estimate():
    d = -np.array([1.2, 0.9, 1.4, 1.1, 0.8])
    dec = paired_bound(d, direction="less")
    assert dec.passed and dec.estimate < 0 and dec.statistic < 0
    assert dec.interval[0] < dec.interval[1] < 0
    assert not paired_bound(-d, direction="less").passed


def test_paired_bound_false_positive_rate_is_about_five_percent():
    rng = np.random.default_rng(1)
    hits = sum(paired_bound(rng.normal(size=6)).passed for _ in range(4000))
    assert 0.03 < hits / 4000 < 0.07


@pytest.mark.parametrize("wins,n,passes", [(5, 5, True), (4, 5, False), (3, 5, False), (9, 10, True),
                                           (8, 10, False), (15, 20, True), (14, 20, False)])
def test_sign_count_thresholds(wins, n, passes):
    d = np.array([1.0] * wins + [-1.0] * (n - wins))
    dec = sign_count(d)
    assert dec.passed is passes
    assert dec.statistic == wins


def test_sign_count_ties_are_losses_and_tail_matches_scipy():
    assert not sign_count([1, 1, 1, 1, 0.0]).passed
    for k in range(11):
        assert claims.binomial_tail(k, 10) == pytest.approx(stats.binom.sf(k - 1, 10, 0.5))


def test_threshold_rules():
    assert at_least(0.9, 0.8).passed and not at_least(0.7, 0.8).passed
    assert at_most(1e-6, 1e-5).passed and not at_most(1e-4, 1e-5).passed
    assert within(0.5, 0.4, 0.6).passed and not within(0.7, 0.4, 0.6).passed


@pytest.mark.parametrize("call", [
    lambda: paired_bound([1, 2, 3, 4]),                      # fewer than 5 pairs
    lambda: paired_bound([1, 2, 3, 4, 5], [1, 2, 3]),        # unpaired
    lambda: paired_bound([1, 2, np.nan, 4, 5]),              # not finite
    lambda: paired_bound(np.ones((5, 2))),                   # not 1-D
    lambda: paired_bound([1, 2, 3, 4, 5], margin=-1),
    lambda: paired_bound([1, 2, 3, 4, 5], level=1.2),
    lambda: paired_bound([1, 2, 3, 4, 5], direction="up"),
    lambda: sign_count([1, 2, 3, 4, 5], alpha=0.9),
    lambda: within(0.5, 0.6, 0.4),
    lambda: at_least("high", 0.5),
    lambda: claims.study_range([1.0]),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def _claim(ledger, **kw):
    args = dict(paper="91.1", source="Table 1", rule=paired_bound([1.2, 0.9, 1.4, 1.1, 0.8]),
                control=paired_bound([0.3, -0.2, 0.5, -0.4, 0.1]), control_label="same method, other seeds")
    args.update(kw)
    return ledger.claim("gain", "A beats B", **args)


def test_a_reproduced_claim_is_recorded():
    ledger = Ledger("ch")
    c = _claim(ledger)
    assert c.verdict == "reproduced" and ledger["gain"] is c and len(ledger) == 1
    assert ledger.counts() == {"reproduced": 1}


def test_a_failing_rule_raises_with_id_rule_value_and_threshold():
    ledger = Ledger("ch")
    with pytest.raises(ClaimFailed) as err:
        _claim(ledger, rule=paired_bound([0.3, -0.2, 0.5, -0.4, 0.1]))
    msg = str(err.value)
    assert "gain" in msg and "one-sided 95 % lower bound" in msg and "threshold 0" in msg and "measured" in msg


def test_a_passing_negative_control_fails_the_claim():
    with pytest.raises(ClaimFailed, match="negative control passes"):
        _claim(Ledger("ch"), control=paired_bound([1.2, 0.9, 1.4, 1.1, 0.8]))


def test_a_comparative_claim_needs_a_control():
    with pytest.raises(ValueError, match="negative control"):
        _claim(Ledger("ch"), control=None)


def test_not_reproduced_needs_a_pin_a_failing_rule_and_a_holding_pin():
    null = paired_bound([0.3, -0.2, 0.5, -0.4, 0.1])
    ctl = paired_bound([0.2, -0.3, 0.1, -0.1, 0.0])
    with pytest.raises(ValueError, match="pin"):
        _claim(Ledger("ch"), rule=null, control=ctl, verdict="not reproduced at this scale")
    c = _claim(Ledger("ch"), rule=null, control=ctl, verdict="not reproduced at this scale",
               pin=within(null.estimate, -0.5, 0.5))
    assert c.verdict == "not reproduced at this scale"
    with pytest.raises(ClaimFailed, match="left its measured range"):
        _claim(Ledger("ch"), rule=null, control=ctl, verdict="not reproduced at this scale",
               pin=within(null.estimate, 0.5, 0.9))
    with pytest.raises(ClaimFailed, match="stale"):
        _claim(Ledger("ch"), verdict="not reproduced at this scale", pin=within(1.0, 0, 2))


def test_a_seed_varying_claim_is_not_stale_where_its_study_saw_the_rule_fail():
    from jaxpapers import config

    def study(passed, n=5, scale=None):
        return {"scale": scale or config.scale(), "claims": {"gain": {"passed": passed, "n": n, "estimate": [0.0] * n}}}

    kw = dict(verdict="not reproduced at this scale", pin=within(1.0, 0, 2))
    # the rule holds at this seed (default rule) and the study saw it hold at 2 of 5 seeds: the verdict stands
    c = _claim(Ledger("ch"), study=study(2), **kw)
    assert c.problem == "" and "held at 2 of 5 seeds" in c.note and c.study_held == (2, 5)
    # a study in which the rule held at every seed, a study of another scale, or none: stale as before
    for s in (study(5), study(2, scale="other-scale"), None, {"claims": {}}):
        with pytest.raises(ClaimFailed, match="stale"):
            _claim(Ledger("ch"), study=s, **kw)
    # a failing rule needs no study and gets no note
    null = paired_bound([0.3, -0.2, 0.5, -0.4, 0.1])
    c = _claim(Ledger("ch"), rule=null, study=study(2), **kw)
    assert c.problem == "" and "study" not in c.note


def test_a_rule_that_passes_with_its_control_has_not_shown_the_effect():
    strong = paired_bound([1.2, 0.9, 1.4, 1.1, 0.8])
    # "not reproduced" stays consistent when the control passes as well ...
    c = _claim(Ledger("ch"), control=strong, verdict="not reproduced at this scale", pin=within(1.0, 0, 2))
    assert c.problem == ""
    # ... but a "reproduced" verdict then fails
    with pytest.raises(ClaimFailed, match="negative control passes"):
        _claim(Ledger("ch"), control=strong)


def test_claim_argument_checks():
    ledger = Ledger("ch")
    with pytest.raises(ValueError, match="verdict"):
        _claim(ledger, verdict="works")
    with pytest.raises(ValueError, match="source"):
        _claim(ledger, source="")
    with pytest.raises(ValueError, match="identifier"):
        ledger.check("bad id", "x", at_most(0, 1))
    ledger.check("ok", "x", at_most(0, 1))
    with pytest.raises(ValueError, match="already"):
        ledger.check("ok", "x", at_most(0, 1))
    with pytest.raises(ValueError, match="kind"):
        ledger.check("k", "x", at_most(0, 1), kind="claim")
    with pytest.raises(ValueError, match="comparative"):
        ledger.check("cmp", "x", paired_bound([1, 2, 3, 4, 5]))
    with pytest.raises(ValueError):
        Ledger("")


def test_checks_fail_loudly_and_label_themselves():
    ledger = Ledger("ch")
    assert ledger.check("exact", "equals GD", at_most(1e-7, 1e-5)).verdict == "check passed"
    assert ledger.check("kept", "kept <= both", at_most(0, 0), kind="sanity").verdict == "sanity check"
    with pytest.raises(ClaimFailed, match="exact2"):
        ledger.check("exact2", "equals GD", at_most(1e-3, 1e-5, what="max |diff|"))


def test_a_claim_displays_as_its_table_row():
    pretty = pytest.importorskip("IPython.lib.pretty")
    ledger = Ledger("ch")
    c = ledger.check("exact", "equals GD", at_most(1e-7, 1e-5, what="max |diff|"))
    shown = pretty.pretty(c)
    assert shown == c.text() == ledger.text()
    assert shown.startswith("[check passed] exact: equals GD") and "max |diff| <= 1e-05 -> holds" in shown
    assert "Claim(" not in shown


def test_dry_run_records_but_never_raises(monkeypatch):
    monkeypatch.setenv(claims.DRY_RUN_ENV, "1")
    c = _claim(Ledger("ch"), rule=paired_bound([0.3, -0.2, 0.5, -0.4, 0.1]))
    assert c.verdict == "dry run" and "would fail" in c.note
    monkeypatch.setenv(claims.DRY_RUN_ENV, "maybe")
    with pytest.raises(ValueError):
        claims.dry_run()


def test_study_mode_records_problems_without_raising(monkeypatch, tmp_path):
    monkeypatch.setenv(claims.ENFORCE_ENV, "0")
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv(claims.LOG_ENV, str(log))
    for seed in range(3):
        monkeypatch.setenv("BOOK_SEED", str(seed))
        ledger = Ledger("ch")
        d = [1.2, 0.9, 1.4, 1.1, 0.8] if seed else [0.3, -0.2, 0.5, -0.4, 0.1]
        _claim(ledger, rule=paired_bound(d))
        ledger.log()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    summary = claims.collect(rows)["gain"]
    assert summary["n"] == 3 and summary["passed"] == 2 and summary["control_passed"] == 0
    assert [f["seed"] for f in summary["failures"]] == ["0"]
    assert summary["min"] == pytest.approx(0.06)


def test_table_text_html_and_embedded_records():
    ledger = Ledger("ch")
    _claim(ledger)
    ledger.check("exact", "construction equals GD <b>", at_most(1e-7, 1e-5))
    text = ledger.text()
    assert "[reproduced] gain: A beats B" in text and "Table 1" in text and "negative control" in text
    page = ledger.html()
    assert "&lt;b&gt;" in page and "<b>exact</b>" in page
    payload = page.split(f'class="{claims.MARKER}">', 1)[1].split("</script>", 1)[0]
    records = json.loads(payload.replace("<\\/", "</"))
    assert records["chapter"] == "ch" and [r["id"] for r in records["claims"]] == ["gain", "exact"]
    assert records["claims"][0]["paper"] == "91.1" and records["claims"][0]["verdict"] == "reproduced"


def test_summary_formats_estimate_interval_and_n():
    dec = paired_bound([1.2, 0.9, 1.4, 1.1, 0.8], unit="points")
    s = dec.summary()
    assert s.startswith("+1.08 points (95 % CI +") and s.endswith("n = 5)")


def test_report_glues_each_claim(monkeypatch):
    glued = {}
    import jaxpapers.notebook as nbmod

    monkeypatch.setattr(nbmod, "glue", lambda name, value, display=False: glued.__setitem__(name, value))
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    ledger = Ledger("ch")
    _claim(ledger)
    ledger.report()
    assert glued["gain_verdict"] == "reproduced" and glued["gain_paper"] == "91.1"
    assert glued["gain_estimate"] == pytest.approx(1.08) and glued["gain_ours"].startswith("+1.08")
    assert "text/html" in shown[0] and "text/plain" in shown[0]
    with pytest.raises(ValueError, match="empty"):
        Ledger("empty").report()


def test_study_range_and_load_study_errors():
    assert claims.study_range([0.1, 0.3, 0.2]) == pytest.approx((0.1, 0.3))
    assert claims.study_range([0.1, 0.3], widen=0.5) == pytest.approx((0.0, 0.4))
    with pytest.raises(ValueError, match="no seed study"):
        claims.load_study("no-such-chapter")
    assert claims.load_study("no-such-chapter", missing_ok=True) is None
    assert claims.load_study("04-hypertransformer", missing_ok=True)["claims"]  # a committed one still loads
    assert "no seed study" in claims.study_report(None)


def test_study_report_lists_every_claim_and_rejects_bad_input():
    rows = [{"id": "gain", "statement": "s", "verdict": "reproduced", "rule": "r", "seed_env": str(k),
             "decision": {"estimate": e, "statistic": e, "passed": e > 0.5},
             "control": {"passed": k == 2}} for k, e in enumerate([0.4, 0.9, 1.2])]
    text = claims.study_report({"command": "python tools/seed_study.py x --seeds 0-2", "claims": claims.collect(rows)})
    assert "--seeds 0-2" in text
    assert "rule held on 2 of 3 seeds; control passed on 1" in text
    assert "0.4" in text and "1.2" in text
    with pytest.raises(ValueError, match="seed study"):
        claims.study_report({"command": "x"})
    with pytest.raises(ValueError, match="seed study"):
        claims.study_report([1, 2])


def test_study_pin_widens_the_measured_range_and_fails_without_a_study(monkeypatch):
    monkeypatch.delenv("BOOK_SCALE", raising=False)
    study = {"scale": "fast", "claims": {"gain": {"estimate": [1.0, 3.0, 2.0]}}}
    # margin = max(pad, widen * spread): spread 2, so widen 3 gives 6 and pad 10 wins over widen 1
    assert claims.study_pin(study, "gain", 2.5, what="g").threshold == pytest.approx((1.0, 3.0))
    assert claims.study_pin(study, "gain", 2.5, what="g", widen=3.0).threshold == pytest.approx((-5.0, 9.0))
    assert claims.study_pin(study, "gain", 2.5, what="g", widen=1.0, pad=10.0).threshold == pytest.approx((-9.0, 13.0))
    assert claims.study_pin(study, "gain", 3.0, what="g").passed
    assert not claims.study_pin(study, "gain", 3.01, what="g").passed
    assert not claims.study_pin(study, "gain", 0.99, what="g").passed
    # nothing measured: the pin fails and says what is missing
    for bad, why in [(None, "no seed study"), ({"scale": "fast", "claims": {}}, "no claim 'gain'"),
                     ({"scale": "full", "claims": study["claims"]}, "scale 'full'")]:
        d = claims.study_pin(bad, "gain", 2.0, what="g")
        assert not d.passed and why in d.rule
    monkeypatch.setenv("BOOK_SCALE", "full")
    assert not claims.study_pin(study, "gain", 2.0, what="g").passed
    assert claims.study_pin({"scale": "full", "claims": study["claims"]}, "gain", 2.0, what="g").passed
    with pytest.raises(ValueError, match="widen and pad"):
        claims.study_pin(study, "gain", 2.0, what="g", pad=-1.0)
    with pytest.raises(ValueError, match="number"):
        claims.study_pin(study, "gain", "x", what="g")
