"""The claims ledger: every claim a chapter makes, its rule, its verdict, and the paper's number.

A chapter states each of its paper's claims once, through a :class:`Ledger`. A claim
carries the paper's statement, the paper's value and its source (a table, figure or
section, or the authors' code; or "the paper reports no number"), our statistic with its
uncertainty and the seeds or episodes behind it, the **decision rule**, and a verdict.
From that one record the ledger prints the chapter's *paper vs. ours* table, glues the
numbers the prose quotes, writes a machine-readable copy that the book's claims board
collects, and fails with a clear message when a rule fails.

Rules (each returns a :class:`Decision`):

* :func:`paired_bound` -- a comparative claim on paired data (A beats B on the same seeds
  or episodes): the one-sided 95 % Student-t bound of the mean difference must clear a
  margin.
* :func:`sign_count` -- the same on signs: ``k`` of ``n`` paired differences favour the
  claim, and the chance of that many or more under no effect (a fair coin) is at most 5 %
  (5/5, 9/10, 15/20 ...; never 3 of 5).
* :func:`at_least`, :func:`at_most`, :func:`within` -- a value against a threshold or a
  range (a measured range pinned from a seed study, an exactness tolerance).

Kinds of record:

``claim``
    One of the paper's claims, with a verdict from :data:`VERDICTS`. A *comparative*
    claim (decided by :func:`paired_bound` or :func:`sign_count`) must come with a
    **negative control**: the same rule applied where the effect is absent, which must
    *not* pass. A claim whose verdict is "not reproduced at this scale" or
    "contradicted" must have a rule that does not pass (otherwise the verdict is stale)
    and a ``pin`` that holds: its statistic within the measured range, so that a
    regression is still caught.
``check``
    An exactness check (a construction equals gradient descent to 1e-5).
``sanity``
    Something that holds by construction (a kept result is no worse than both inputs).
``smoke``
    A run that only shows the code path works (nothing is claimed).

With ``BOOK_DRY_RUN=1`` (the CPU dry run of full mode, where every loop is cut to a few
steps) rules are evaluated and shown but never raise, and every verdict reads "dry run".
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

VERDICTS = (
    "reproduced",
    "reproduced at a smaller scale",
    "partly reproduced",
    "not reproduced at this scale",
    "contradicted",
)
PASSING_VERDICTS = VERDICTS[:3]
KINDS = ("claim", "check", "sanity", "smoke")
KIND_VERDICT = {"check": "check passed", "sanity": "sanity check", "smoke": "smoke run"}
DRY_RUN_ENV = "BOOK_DRY_RUN"  # (read by jaxpapers.config.dry_run)
# Seed studies record every rule's outcome without stopping the chapter at the first failure.
ENFORCE_ENV = "JAXPAPERS_CLAIMS_ENFORCE"
LOG_ENV = "JAXPAPERS_CLAIMS_LOG"
NO_NUMBER = "the paper reports no number"
# The machine-readable copy embedded in the table's HTML; the book's claims board reads it.
MARKER = "jaxpapers-claims"


class ClaimFailed(AssertionError):
    """A rule failed: the chapter no longer reproduces what it says it does."""


def dry_run() -> bool:
    """``True`` when ``BOOK_DRY_RUN`` asks for a dry run (rules shown, never enforced)."""
    from jaxpapers import config

    return config.dry_run()


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """The outcome of one rule on one set of measurements.

    Attributes:
        rule: the rule in words ("one-sided 95 % lower bound of the mean difference > 0").
        passed: whether the rule holds.
        statistic: the number the rule compares with its threshold.
        threshold: the threshold (a number, or a ``(lo, hi)`` range).
        estimate: the measured effect (a mean difference, a value).
        interval: a two-sided 95 % interval of the estimate, when there is one.
        n: how many seeds or episodes the estimate rests on.
        unit: the unit of the estimate ("points", "nats", ""), for the table.
        comparative: decided on paired data (needs a negative control).
    """

    rule: str
    passed: bool
    statistic: float
    threshold: object
    estimate: float
    interval: tuple | None = None
    n: int | None = None
    unit: str = ""
    comparative: bool = False

    def summary(self, digits: int = 3) -> str:
        """The estimate as a reader sees it: ``+1.20 points (95 % CI +0.40 to +2.00; n = 5)``."""
        signed = self.comparative
        text = _fmt(self.estimate, digits, signed)
        if self.unit:
            text += f" {self.unit}"
        extra = []
        if self.interval is not None:
            lo, hi = self.interval
            extra.append(f"95 % CI {_fmt(lo, digits, signed)} to {_fmt(hi, digits, signed)}")
        if self.n is not None:
            extra.append(f"n = {self.n}")
        return text + (f" ({'; '.join(extra)})" if extra else "")

    def message(self) -> str:
        return (f"rule: {self.rule}; measured {_fmt(self.statistic, 4)}, "
                f"threshold {_fmt_threshold(self.threshold)}; estimate {self.summary(4)}")


def _fmt(x, digits: int = 3, signed: bool = False) -> str:
    if x is None:
        return "-"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:+.{digits}g}" if signed else f"{x:.{digits}g}"


def _fmt_threshold(t) -> str:
    if isinstance(t, tuple):
        return f"[{_fmt(t[0], 4)}, {_fmt(t[1], 4)}]"
    return _fmt(t, 4) if isinstance(t, (int, float, np.floating, np.integer)) else str(t)


def _finite_vector(name: str, values) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {type(values).__name__}") from err
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed or episode), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf: {v.tolist()}")
    return v


def _scalar(name: str, value) -> float:
    try:
        v = float(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
    return v


def _differences(a, b, direction: str) -> np.ndarray:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    a = _finite_vector("a", a)
    if b is not None:
        b = _finite_vector("b", b)
        if a.shape != b.shape:
            raise ValueError(f"paired data: a and b must have the same length, got {a.shape} and {b.shape}")
        a = a - b
    return a if direction == "greater" else -a


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (scipy), e.g. ``t_quantile(0.95, 4) = 2.132``."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def paired_bound(a, b=None, *, margin: float = 0.0, direction: str = "greater",
                 level: float = 0.95, unit: str = "", min_n: int = 5) -> Decision:
    """Decide "A beats B" on paired data by the one-sided ``level`` Student-t bound.

    ``d = a - b`` (or ``a`` alone, already differences). With ``direction="greater"`` the
    rule passes when the one-sided lower bound ``mean(d) - t_{level, n-1} s / sqrt(n)``
    exceeds ``margin``; with ``"less"`` when the upper bound is below ``-margin`` (the
    estimate is reported in the original sign).

    Args:
        a, b: per-seed (or per-episode) values of the two arms, paired by position.
        margin: the smallest effect that counts (in the estimate's units), ``>= 0``.
        direction: ``"greater"`` (A > B) or ``"less"`` (A < B).
        level: one-sided confidence level, in (0.5, 1).
        unit: the estimate's unit, for the table.
        min_n: the fewest pairs accepted (5 by the book's rule).

    Raises:
        ValueError: unpaired or non-finite data, fewer than ``min_n`` pairs, a negative
            margin, or a level outside (0.5, 1).
    """
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), got {level}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    d = _differences(a, b, direction)
    n = d.size
    if n < max(2, min_n):
        raise ValueError(f"a comparative claim needs at least {max(2, min_n)} pairs, got {n}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    half2 = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    bound = mean - half
    sign = 1.0 if direction == "greater" else -1.0
    interval = tuple(sorted((sign * (mean - half2), sign * (mean + half2))))
    word = "lower" if direction == "greater" else "upper"
    rel = ">" if direction == "greater" else "<"
    thr = margin if direction == "greater" else -margin
    rule = (f"one-sided {level * 100:g} % {word} bound of the paired mean difference {rel} "
            f"{_fmt(thr, 3, True) if margin else '0'}")
    return Decision(rule=rule, passed=bool(bound > margin), statistic=sign * bound, threshold=thr,
                    estimate=sign * mean, interval=interval, n=n, unit=unit, comparative=True)


def binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``: the chance of ``k`` or more wins with no effect."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def sign_count(a, b=None, *, direction: str = "greater", alpha: float = 0.05, unit: str = "",
               min_n: int = 5) -> Decision:
    """Decide "A beats B" by counting paired wins: pass when ``P(>= k wins | no effect) <= alpha``.

    Ties count as losses. 5 of 5 (p = 0.031) and 9 of 10 (p = 0.011) pass; 3 of 5
    (p = 0.5) and 4 of 5 (p = 0.19) do not.

    Raises:
        ValueError: as :func:`paired_bound`; ``alpha`` outside (0, 0.5].
    """
    if not 0 < alpha <= 0.5:
        raise ValueError(f"alpha must be in (0, 0.5], got {alpha}")
    d = _differences(a, b, direction)
    n = d.size
    if n < min_n:
        raise ValueError(f"a comparative claim needs at least {min_n} pairs, got {n}")
    k = int(np.sum(d > 0))
    p = binomial_tail(k, n)
    need = next(j for j in range(n + 1) if binomial_tail(j, n) <= alpha) if binomial_tail(n, n) <= alpha else None
    sign = 1.0 if direction == "greater" else -1.0
    word = "A > B" if direction == "greater" else "A < B"
    rule = (f"sign count: {word} in at least {need} of {n} pairs (P(no effect) <= {alpha:g})"
            if need is not None else f"sign count: {n} pairs cannot reach P <= {alpha:g}")
    return Decision(rule=rule, passed=bool(p <= alpha), statistic=float(k),
                    threshold=float(need) if need is not None else float("inf"),
                    estimate=sign * float(np.median(d)), interval=None, n=n, unit=unit,
                    comparative=True)


def at_least(value, threshold, *, unit: str = "", n: int | None = None, interval=None,
             what: str = "value") -> Decision:
    """``value >= threshold`` (a floor: an accuracy above chance, a measured range's minimum)."""
    v, t = _scalar("value", value), _scalar("threshold", threshold)
    return Decision(rule=f"{what} >= {_fmt(t, 4)}", passed=bool(v >= t), statistic=v, threshold=t,
                    estimate=v, interval=_interval(interval), n=n, unit=unit)


def at_most(value, threshold, *, unit: str = "", n: int | None = None, interval=None,
            what: str = "value") -> Decision:
    """``value <= threshold`` (an error bound, an exactness tolerance)."""
    v, t = _scalar("value", value), _scalar("threshold", threshold)
    return Decision(rule=f"{what} <= {_fmt(t, 4)}", passed=bool(v <= t), statistic=v, threshold=t,
                    estimate=v, interval=_interval(interval), n=n, unit=unit)


def within(value, lo, hi, *, unit: str = "", n: int | None = None, interval=None,
           what: str = "value") -> Decision:
    """``lo <= value <= hi`` (a statistic pinned to the range a seed study measured)."""
    v, lo, hi = _scalar("value", value), _scalar("lo", lo), _scalar("hi", hi)
    if lo > hi:
        raise ValueError(f"need lo <= hi, got [{lo}, {hi}]")
    return Decision(rule=f"{what} in [{_fmt(lo, 4)}, {_fmt(hi, 4)}]", passed=bool(lo <= v <= hi),
                    statistic=v, threshold=(lo, hi), estimate=v, interval=_interval(interval),
                    n=n, unit=unit)


def _interval(interval):
    if interval is None:
        return None
    lo, hi = (_scalar("interval", x) for x in interval)
    return (lo, hi)


# --------------------------------------------------------------------------- records


@dataclass
class Claim:
    """One row of the ledger (see :meth:`Ledger.claim`)."""

    id: str
    statement: str
    kind: str
    verdict: str
    decision: Decision
    paper: str = ""
    source: str = ""
    control: Decision | None = None
    control_label: str = ""
    pin: Decision | None = None
    seeds: str = ""
    note: str = ""
    chapter: str = ""
    problem: str = ""  # why the record fails ("" when every rule holds as stated)
    study_held: tuple | None = None  # (seeds where the rule held, seeds) in the committed seed study

    def ours(self) -> str:
        return self.decision.summary()

    def text(self) -> str:
        """This record as the lines of the paper-vs-ours text table."""
        lines = [f"[{self.verdict}] {self.id}: {self.statement}"]
        if self.kind == "claim":
            lines.append(f"    paper: {self.paper or '-'} ({self.source})")
        lines.append(f"    ours:  {self.ours()}" + (f"  [{self.seeds}]" if self.seeds else ""))
        lines.append(f"    rule:  {self.decision.rule} -> {'holds' if self.decision.passed else 'does not hold'}")
        if self.control is not None:
            lines.append(f"    negative control{' (' + self.control_label + ')' if self.control_label else ''}: "
                         f"{self.control.summary()} -> {'passes (!)' if self.control.passed else 'does not pass'}")
        if self.pin is not None:
            lines.append(f"    pinned: {self.pin.rule} -> {'holds' if self.pin.passed else 'fails'}")
        if self.note:
            lines.append(f"    note:  {self.note}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:
        # a notebook cell that ends with ledger.claim(...) shows the record as the table prints it
        p.text(self.text())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ours"] = self.ours()
        d["rule"] = self.decision.rule
        d["passed"] = self.decision.passed
        if self.control is not None:
            d["control_summary"] = self.control.summary()
        return json.loads(json.dumps(d, default=_json_default))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return str(x)


_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Ledger:
    """The claims of one chapter, stated once and enforced where they are stated.

    >>> ledger = Ledger("getting-started")
    >>> _ = ledger.check("ls_match", "Adam reaches the least-squares fit",
    ...                  at_most(1e-4, 1e-3, what="|a - a_ls|"))
    >>> ledger["ls_match"].verdict
    'check passed'
    """

    chapter: str
    claims: list = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.chapter, str) or not self.chapter:
            raise ValueError("chapter must be a non-empty string")

    # ---- stating claims

    def claim(self, id: str, statement: str, rule: Decision, *, paper, source: str,
              verdict: str = "reproduced", control: Decision | None = None, control_label: str = "",
              pin: Decision | None = None, seeds: str = "", note: str = "",
              study: dict | None = None) -> Claim:
        """State one of the paper's claims and enforce its rule.

        Args:
            id: identifier-like (``"deep_gdpp"``); the glued names start with it.
            statement: the paper's claim, in one sentence.
            rule: the :class:`Decision` that decides it.
            paper: the paper's value (a number or text); ``None`` when the paper reports
                no number (then ``source`` says so, e.g. :data:`NO_NUMBER`).
            source: where the paper's value is (``"Table 2"``, ``"Fig. 3"``, ``"Sec. 4.1"``,
                ``"authors' code: train.py"``) or why there is none.
            verdict: one of :data:`VERDICTS`.
            control: the negative control (required for a comparative rule): the same rule
                where the effect is absent; it must not pass.
            control_label: what the control is ("the method against itself, other seeds").
            pin: for a verdict that says the claim does not hold: the statistic pinned to
                its measured range (e.g. :func:`within`); it must hold.
            seeds: which seeds or episodes (``"seeds 0-4"``, ``"2,000 paired episodes"``).
            note: one short line for the table.
            study: the chapter's committed seed study (:func:`load_study`), for a verdict that
                says the claim does not hold. Such a verdict is *stale* when the rule holds and
                its control does not; but where the study shows the rule failing at some of its
                seeds, the claim holds at some seeds and not at every one, so a rule that holds
                at this seed leaves the verdict standing (the note says so).

        Raises:
            ValueError: bad arguments (unknown verdict, missing control, missing pin ...).
            ClaimFailed: the rule contradicts the verdict, the control passes, or the pin fails.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"claim {id!r}: give the paper's source (table, figure, section, code), "
                             f"or say that the paper reports no number")
        if rule.comparative and control is None:
            raise ValueError(f"claim {id!r} is comparative: give a negative control (the same rule "
                             f"where the effect is absent)")
        if control is not None and not isinstance(control, Decision):
            raise ValueError(f"claim {id!r}: control must be a Decision")
        failing = verdict not in PASSING_VERDICTS
        if failing and pin is None:
            raise ValueError(f"claim {id!r} has verdict {verdict!r}: pin its statistic to the measured "
                             f"range (pin=within(...)) so that a regression is still caught")
        c = Claim(id=id, statement=statement, kind="claim", verdict=verdict, decision=rule,
                  paper="" if paper is None else _paper_text(paper), source=source, control=control,
                  control_label=control_label, pin=pin, seeds=seeds, note=note, chapter=self.chapter,
                  study_held=_study_held(study, id) if failing else None)
        if failing and c.study_held and rule.passed and not (control is not None and control.passed):
            held, n = c.study_held
            c.note = (c.note + "; " if c.note else "") + (
                f"the rule holds at this seed; in the seed study it held at {held} of {n} seeds")
        self._add(c)
        return c

    def check(self, id: str, statement: str, rule: Decision, *, kind: str = "check",
              seeds: str = "", note: str = "") -> Claim:
        """Record an exactness check, a sanity check (holds by construction) or a smoke run.

        Raises:
            ValueError: unknown ``kind``, a comparative rule (that is a claim).
            ClaimFailed: the rule fails.
        """
        if kind not in KIND_VERDICT:
            raise ValueError(f"kind must be one of {tuple(KIND_VERDICT)}, got {kind!r}")
        if rule.comparative:
            raise ValueError(f"{id!r}: a comparative rule states a claim; use Ledger.claim")
        c = Claim(id=id, statement=statement, kind=kind, verdict=KIND_VERDICT[kind], decision=rule,
                  paper="", source="", seeds=seeds, note=note, chapter=self.chapter)
        self._add(c)
        return c

    def _add(self, c: Claim) -> None:
        if not isinstance(c.id, str) or not _ID.match(c.id):
            raise ValueError(f"claim id must be identifier-like (letters, digits, _), got {c.id!r}")
        if any(old.id == c.id for old in self.claims):
            raise ValueError(f"claim id {c.id!r} is already on the ledger of {self.chapter}")
        if not isinstance(c.decision, Decision):
            raise ValueError(f"{c.id!r}: rule must be a Decision (from paired_bound, sign_count, "
                             f"at_least, at_most or within)")
        if not isinstance(c.statement, str) or not c.statement.strip():
            raise ValueError(f"{c.id!r}: give the statement")
        self.claims.append(c)
        c.problem = _problem(c)
        if dry_run():
            c.note = (c.note + "; " if c.note else "") + ("would fail: " + c.problem if c.problem else "rules hold")
            c.verdict = "dry run"
            return
        if c.problem and os.environ.get(ENFORCE_ENV, "1").strip() != "0":
            raise ClaimFailed(f"[{self.chapter}] {c.id} ({c.verdict}): {c.problem}")

    def __getitem__(self, id: str) -> Claim:
        for c in self.claims:
            if c.id == id:
                return c
        raise KeyError(id)

    def __len__(self) -> int:
        return len(self.claims)

    # ---- reporting

    def rows(self) -> list[dict]:
        return [c.to_dict() for c in self.claims]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.claims:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    def text(self) -> str:
        """The paper-vs-ours table as plain text."""
        return "\n".join(c.text() for c in self.claims)

    def html(self) -> str:
        """The paper-vs-ours table as HTML, with the records embedded for the claims board."""
        esc = html.escape
        head = ("<tr><th>Claim</th><th>Paper</th><th>Ours</th><th>Rule</th>"
                "<th>Negative control</th><th>Verdict</th></tr>")
        body = []
        for c in self.claims:
            paper = "" if c.kind != "claim" else (f"{esc(c.paper)}<br><small>{esc(c.source)}</small>"
                                                  if c.paper else f"<small>{esc(c.source)}</small>")
            ours = esc(c.ours()) + (f"<br><small>{esc(c.seeds)}</small>" if c.seeds else "")
            rule = esc(c.decision.rule) + (f"<br><small>pinned: {esc(c.pin.rule)}</small>" if c.pin else "")
            control = "" if c.control is None else (
                esc(c.control.summary()) + f"<br><small>{esc(c.control_label)}"
                f"{' - ' if c.control_label else ''}{'passes' if c.control.passed else 'does not pass'}</small>")
            note = f"<br><small>{esc(c.note)}</small>" if c.note else ""
            body.append(f"<tr><td><b>{esc(c.id)}</b>: {esc(c.statement)}{note}</td><td>{paper}</td>"
                        f"<td>{ours}</td><td>{rule}</td><td>{control}</td><td>{esc(c.verdict)}</td></tr>")
        records = json.dumps({"chapter": self.chapter, "claims": self.rows()}).replace("</", "<\\/")
        return (f'<table class="claims-ledger">{head}{"".join(body)}</table>'
                f'<script type="application/json" class="{MARKER}">{records}</script>')

    def report(self, glue_prefix: str | None = "") -> None:
        """Display the table (HTML on the page, text elsewhere), glue each claim's numbers, log.

        For every claim ``id`` the page can quote ``{glue:text}`id_ours``` (our estimate with
        its interval), ``id_verdict``, ``id_estimate`` (a number: use a format spec) and, for a
        claim with a paper value, ``id_paper``. ``glue_prefix`` is put before every name
        (``None``: glue nothing).
        """
        from IPython.display import display

        from jaxpapers.notebook import glue

        if not self.claims:
            raise ValueError("the ledger is empty: state the chapter's claims first")
        display({"text/html": self.html(), "text/plain": self.text()}, raw=True)
        if glue_prefix is not None:
            for c in self.claims:
                p = f"{glue_prefix}{c.id}"
                glue(f"{p}_ours", c.ours())
                glue(f"{p}_verdict", c.verdict)
                glue(f"{p}_estimate", float(c.decision.estimate))
                if c.paper:
                    glue(f"{p}_paper", c.paper)
        self.log()

    def log(self) -> None:
        """Append the records to ``$JAXPAPERS_CLAIMS_LOG`` (JSON lines) when it is set (seed studies)."""
        path = os.environ.get(LOG_ENV)
        if not path:
            return
        with open(path, "a", encoding="utf-8") as f:
            for row in self.rows():
                row["seed_env"] = os.environ.get("BOOK_SEED", "")
                f.write(json.dumps(row) + "\n")


def _paper_text(paper) -> str:
    if isinstance(paper, str):
        return paper
    if isinstance(paper, (int, float, np.floating, np.integer)):
        return f"{float(paper):g}"
    raise ValueError(f"paper must be a number, a string or None, got {paper!r}")


def _problem(c: Claim) -> str:
    """Why this record fails, or ``""``."""
    problems = []
    control_passes = c.control is not None and c.control.passed
    if c.kind == "claim" and c.verdict not in PASSING_VERDICTS:
        # A claim reproduces only when its rule holds *and* its negative control does not: a rule
        # that passes together with its control has not shown the effect, so the verdict stands.
        # Nor is the verdict stale where the seed study saw the rule fail at some of its seeds: the
        # claim then holds at some seeds, not at every one (``study_held``).
        mixed = c.study_held is not None and c.study_held[0] < c.study_held[1]
        if c.decision.passed and not control_passes and not mixed:
            problems.append(f"the rule now holds and its control does not, so the verdict {c.verdict!r} "
                            f"is stale ({c.decision.message()})")
        if c.pin is not None and not c.pin.passed:
            problems.append(f"the pinned statistic left its measured range ({c.pin.message()})")
        return "; ".join(problems)
    if not c.decision.passed:
        problems.append(c.decision.message())
    if control_passes:
        problems.append("the negative control passes too, so the rule cannot tell the effect from its "
                        f"absence (control: {c.control.message()})")
    return "; ".join(problems)


# --------------------------------------------------------------------------- seed studies


STUDY_DIR = "studies"


def load_study(chapter: str, *, missing_ok: bool = False) -> dict | None:
    """The committed seed study of ``chapter`` (``lib/jaxpapers/studies/<chapter>.json``).

    ``tools/seed_study.py`` regenerates it; a chapter pins its tolerances to the ranges in it.
    With ``missing_ok=True`` a missing study gives ``None`` (a chapter runs while its first
    study is being made; every :func:`study_pin` then fails, saying why).

    Raises:
        ValueError: no study for that chapter (unless ``missing_ok``).
    """
    from importlib import resources

    name = f"{chapter}.json"
    path = resources.files("jaxpapers").joinpath(STUDY_DIR, name)
    if not path.is_file():
        if missing_ok:
            return None
        raise ValueError(f"no seed study {STUDY_DIR}/{name} in jaxpapers; run tools/seed_study.py")
    return json.loads(path.read_text(encoding="utf-8"))


def study_range(values: Sequence[float], *, widen: float = 0.0) -> tuple[float, float]:
    """``(min, max)`` of a seed study's values, widened by ``widen`` times their spread each side."""
    v = _finite_vector("values", values)
    if v.size < 2:
        raise ValueError("a seed study needs at least 2 values")
    if widen < 0:
        raise ValueError(f"widen must be >= 0, got {widen}")
    lo, hi = float(v.min()), float(v.max())
    pad = widen * (hi - lo)
    return lo - pad, hi + pad


def _study_held(study: dict | None, claim_id: str) -> tuple | None:
    """``(seeds where the rule held, seeds)`` for ``claim_id`` in a seed study of the running scale, else ``None``."""
    from . import config

    if not isinstance(study, dict) or study.get("scale", config.scale()) != config.scale():
        return None
    entry = (study.get("claims") or {}).get(claim_id)
    if not entry or "passed" not in entry or "n" not in entry:
        return None
    return int(entry["passed"]), int(entry["n"])


def study_pin(study: dict | None, claim_id: str, value, *, what: str, widen: float = 0.0,
              pad: float = 0.0, unit: str = "") -> Decision:
    """Pin ``value`` to the range the committed seed study measured for ``claim_id``.

    The range is the study's ``min`` to ``max`` of that claim's estimate, widened on each side by
    ``max(pad, widen * (max - min))``: a study of a few seeds under-estimates the spread, and the
    same seed moves on another CPU or JAX generation. ``study`` is what :func:`load_study`
    returns, or ``None`` when there is none.

    With no study, no entry for the claim, or a study made at another scale than the one running
    (``jaxpapers.config.scale()``), the range is NaN and the pin fails: a statistic nobody measured
    is never pinned to anything, and the message says which study to run.

    Raises:
        ValueError: ``widen`` or ``pad`` is negative, or ``value`` is not a number.
    """
    from . import config

    if widen < 0 or pad < 0:
        raise ValueError(f"widen and pad must be >= 0, got widen={widen}, pad={pad}")
    v = _scalar("value", value)
    entry, missing = None, ""
    if not isinstance(study, dict):
        missing = "no seed study"
    elif study.get("scale", config.scale()) != config.scale():
        missing = f"the seed study is of scale {study.get('scale')!r}, not {config.scale()!r}"
    else:
        entry = (study.get("claims") or {}).get(claim_id)
        missing = "" if entry else f"the seed study has no claim {claim_id!r}"
    if entry is None:
        return within(v, float("nan"), float("nan"), what=f"{what} ({missing}: run tools/seed_study.py)",
                      unit=unit)
    lo, hi = study_range(entry["estimate"])
    margin = max(pad, widen * (hi - lo))
    return within(v, lo - margin, hi + margin, what=what, unit=unit)


def study_report(study: dict | None) -> str:
    """A seed study as text: its command, then per claim its verdict, on how many seeds the rule
    held, how often its negative control passed, and the range of its estimate.

    ``study`` is what :func:`load_study` returns (``None``: a line saying there is no study yet).

    Raises:
        ValueError: ``study`` has no ``claims`` mapping.
    """
    if study is None:
        return "no seed study yet: tools/seed_study.py writes it"
    rows = study.get("claims") if isinstance(study, dict) else None
    if not isinstance(rows, dict):
        raise ValueError("expected a seed study (a dict with a 'claims' mapping), see load_study")
    lines = [f"seed study: {study.get('command', '?')} ({study.get('date', '?')}, jax {study.get('jax', '?')}, "
             f"{study.get('machine', '?')})"]
    width = max((len(cid) for cid in rows), default=0)
    for cid, e in rows.items():
        ctrl = f"; control passed on {e['control_passed']}" if e.get("control_passed") else ""
        lines.append(f"{cid:<{width}}  {e['verdict']:<29} rule held on {e['passed']} of {e['n']} seeds{ctrl}; "
                     f"estimate {_fmt(e['min'], 4)} to {_fmt(e['max'], 4)}")
    return "\n".join(lines)


def collect(rows: Iterable[dict]) -> dict[str, dict]:
    """Summarise logged ledger rows (one per claim per seed) into per-claim statistics.

    Returns ``{id: {"n": seeds, "estimate": [...], "statistic": [...], "passed": k,
    "control_passed": k, "min": ..., "max": ...}}``.
    """
    out: dict[str, dict] = {}
    for row in rows:
        d = row["decision"]
        e = out.setdefault(row["id"], {"statement": row["statement"], "verdict": row["verdict"],
                                        "rule": row["rule"], "seeds": [], "estimate": [], "statistic": [],
                                        "passed": 0, "control_passed": 0})
        e["seeds"].append(row.get("seed_env", ""))
        e["estimate"].append(d["estimate"])
        e["statistic"].append(d["statistic"])
        e["passed"] += bool(d["passed"])
        e.setdefault("failures", [])
        if row.get("problem"):
            e["failures"].append({"seed": row.get("seed_env", ""), "problem": row["problem"]})
        if row.get("control") is not None:
            e["control_passed"] += bool(row["control"]["passed"])
    for e in out.values():
        est = np.asarray(e["estimate"], dtype=np.float64)
        e["n"] = int(est.size)
        e["min"], e["max"] = float(est.min()), float(est.max())
        e["mean"] = float(est.mean())
    return out
