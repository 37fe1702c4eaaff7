"""The rendered leaderboard page in a real headless browser: Debian's chromium driven by Selenium through
the system chromedriver (nothing is downloaded), the built folder served over HTTP on loopback.

Skipped when chromium, chromedriver or selenium is missing, unless REGURG_BENCH_REQUIRE_BROWSER=1 (CI
sets it; `scripts/setup.sh` installs the Debian packages as root), which turns the skip into a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator

import pytest

from regurg_bench.evaluation.signatures import sacrebleu_signatures
from regurg_bench.leaderboard.provenance import known_task_versions, published_fingerprints
from regurg_bench.leaderboard.render import build
from regurg_bench.leaderboard.safe_io import write_file
from regurg_bench.leaderboard.schema import ENTRY_SCHEMA, LeaderboardEntry
from regurg_bench.leaderboard.submit import entries_dir, finalize_entry

TASK = "regurg_mt_en-es"
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1400,1000"]
#: REAL BLEU per model: numeric order (mid < alpha < zeta) differs from text order of the numbers
#: ("10.25" < "100.0" < "9.5") and from the model names' order, so a wrong sort shows.
REAL_BLEU = {"alpha": 10.25, "mid": 9.5, "zeta": 100.0, "beta": 55.125}


def _browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip (fail under REGURG_BENCH_REQUIRE_BROWSER=1)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
        missing = []
    except ImportError:
        missing = ["the selenium package (pip install -e .[dev])"]
    if not chromium:
        missing.append("chromium (apt-get install chromium)")
    if not driver:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if missing:
        reason = "leaderboard browser test needs " + ", ".join(missing)
        if os.environ.get("REGURG_BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"REGURG_BENCH_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return chromium, driver


def _effect(kind: str, metric: str, estimate: float | None, status: str) -> dict:
    lo, hi = (None, None) if estimate is None else (estimate - 0.1, estimate + 0.1)
    return {"kind": kind, "metric": metric, "estimate": estimate, "ci_low": lo, "ci_high": hi, "status": status,
            "note": "", "level": 0.95}


def make_entry(model: str, real_bleu: float, leaderboard: str = "demo") -> LeaderboardEntry:
    """A valid entry with made-up numbers (the real submission path is tested in test_leaderboard.py)."""
    metrics = ["bleu", "chrf"]
    conds = {"real": {"kind": "real", "generator": None, "seeds": [0, 1]},
             "regurg_apertium": {"kind": "regurg", "generator": "apertium", "seeds": [0, 1]},
             "m1_topk_apertium": {"kind": "m1_topk", "generator": "apertium", "seeds": [0, 1]}}
    base = {"real": real_bleu, "regurg_apertium": real_bleu / 2, "m1_topk_apertium": real_bleu * 0.75}

    def score(x: float) -> dict:
        return {"score": x, "ci_low": x - 1.5, "ci_high": x + 1.25, "per_seed": [x - 0.5, x + 0.5]}

    recovery_bleu = None if model == "beta" else 0.5 + real_bleu / 1000  # "n/a (no gap)" for beta
    body = {
        "schema": ENTRY_SCHEMA, "leaderboard": leaderboard, "model": model, "base_model": f"hub/{model}-base",
        "run_name": f"run-{model}", "config_hash": "sha256:" + "a" * 64, "build_config_hash": "sha256:" + "b" * 64,
        "seeds": [0, 1], "tasks": [TASK], "task_versions": {TASK: sorted(known_task_versions()[TASK])[0]},
        "lm_eval_version": "0.4.13", "sacrebleu_signatures": {m: sacrebleu_signatures()[m] for m in metrics},
        "test_set_fingerprints": {TASK: published_fingerprints()[TASK]}, "n_test_sentences": {TASK: 1004},
        "metrics": metrics, "scoring": {"resamples": 1000, "level": 0.95, "seed": 0}, "conditions": conds,
        "scores": {TASK: {c: {m: score(v if m == "bleu" else v * 2) for m in metrics} for c, v in base.items()}},
        "degradation": {TASK: {"regurg_apertium": {m: _effect("degradation", m, 0.5, "ok") for m in metrics}}},
        "recovery": {TASK: {"m1_topk_apertium": {"regurg_apertium": {
            "bleu": _effect("recovery", "bleu", recovery_bleu, "ok" if recovery_bleu is not None else "no_gap"),
            "chrf": _effect("recovery", "chrf", 0.5, "not_significant")}}}},
        "plausibility": {TASK: {c: {"copied_reference": 0.0, "copied_source": 0.0} for c in conds}},
        "flags": [], "evidence": {"sha256": "sha256:" + "c" * 64, "files": 7, "bytes": 1000},
    }
    return finalize_entry(body)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, dict[str, LeaderboardEntry]]]:
    """A built leaderboard served by a real HTTP server on 127.0.0.1 (a free port)."""
    root = tmp_path_factory.mktemp("boards")
    entries = {m: make_entry(m, v) for m, v in REAL_BLEU.items()}
    for e in entries.values():
        write_file(entries_dir(root, "demo") / f"{e.entry_id}.json", e.to_json())
    folder = entries_dir(root, "demo").parent
    # made-up numbers have no evidence, so they are rendered directly (validate would refuse them)
    build(folder, "demo", list(entries.values()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", entries
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager is never asked to download anything.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _column(driver, table_id: str, col: str) -> list:
    return driver.execute_script(
        "var table = arguments[0], col = arguments[1];"
        "return Array.from(document.querySelectorAll('#' + table + ' tbody tr')).map(function (r) {"
        "  var c = r.querySelector('td[data-col=\"' + col + '\"]');"
        "  return [r.getAttribute('data-entry-id'), c.getAttribute('data-sort-value'), c.textContent]; });",
        table_id, col)


def _click(driver, table_id: str, col: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{table_id} th[data-col='{col}']").click()


def test_page_loads_without_errors_or_network(site, browser):
    url, entries = site
    browser.get(url)
    assert browser.title == "regurg-bench leaderboard: demo"
    assert browser.execute_script("return document.querySelectorAll('table.sortable').length") == 2  # BLEU, chrF
    assert browser.execute_script("return document.getElementById('plot').naturalWidth") > 100
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(r.startswith(url) or r.startswith("data:") for r in resources), resources
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_numbers_shown_equal_the_entries(site, browser):
    url, entries = site
    browser.get(url)
    by_id = {e.entry_id: e for e in entries.values()}
    table = f"t-{TASK}-bleu"
    for col, cond in (("real", "real"), ("regurg_apertium", "regurg_apertium")):
        rows = _column(browser, table, col)
        assert len(rows) == len(entries)
        for entry_id, sort_value, text in rows:
            s = by_id[entry_id].scores[TASK][cond]["bleu"]
            assert float(sort_value) == s.score  # the exact number, not a rounded one
            assert text == f"{s.score:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"
    for entry_id, sort_value, text in _column(browser, table, "R:m1_topk_apertium:regurg_apertium"):
        effect = by_id[entry_id].recovery[TASK]["m1_topk_apertium"]["regurg_apertium"]["bleu"]
        if effect.estimate is None:
            assert sort_value == "" and text == "n/a (no gap)"
        else:
            assert float(sort_value) == effect.estimate and text.startswith(f"{effect.estimate:.3f} [")


def test_clicking_a_header_sorts_numerically_and_toggles(site, browser):
    url, entries = site
    browser.get(url)
    table = f"t-{TASK}-bleu"
    _click(browser, table, "real")
    values = [float(v) for _, v, _ in _column(browser, table, "real")]
    assert values == sorted(REAL_BLEU.values())
    assert browser.execute_script(
        f"return document.querySelector('#{table} th[data-col=real]').getAttribute('aria-sort')") == "ascending"
    _click(browser, table, "real")
    values = [float(v) for _, v, _ in _column(browser, table, "real")]
    assert values == sorted(REAL_BLEU.values(), reverse=True)
    # A column with a missing value (n/a): numbers sorted, the empty one last, in both directions.
    col = "R:m1_topk_apertium:regurg_apertium"
    for _ in range(2):
        _click(browser, table, col)
        raw = [v for _, v, _ in _column(browser, table, col)]
        assert raw[-1] == "" and "" not in raw[:-1]
        nums = [float(v) for v in raw[:-1]]
        assert nums in (sorted(nums), sorted(nums, reverse=True))
    # Text columns sort as text.
    _click(browser, table, "model")
    assert [t for _, _, t in _column(browser, table, "model")] == sorted(REAL_BLEU)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


# ------------------------------------------------------------------------------ collapse curve
@pytest.fixture(scope="module")
def curve_site(tiny_collapse_board, tmp_path_factory) -> Iterator[tuple[str, LeaderboardEntry, LeaderboardEntry]]:
    """A board holding a submitted collapse run (a v3 entry with its evidence) and a plain made-up entry,
    rendered by `build` and served over HTTP on loopback."""
    from regurg_bench.leaderboard.submit import read_entry

    _, _, path = tiny_collapse_board
    folder = tmp_path_factory.mktemp("curve-board") / "demo"
    shutil.copytree(path.parent.parent, folder)
    curve = read_entry(folder / "entries" / path.name, "demo")  # re-checked from its evidence
    plain = make_entry("plain", 1.5)
    write_file(folder / "entries" / f"{plain.entry_id}.json", plain.to_json())
    build(folder, "demo", [curve, plain])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", curve, plain
    finally:
        server.shutdown()
        server.server_close()


def test_the_collapse_curve_shows_for_the_entry_that_has_one(curve_site, browser):
    from selenium.webdriver.common.by import By

    url, curve, plain = curve_site
    browser.get(url)
    figures = browser.find_elements(By.CSS_SELECTOR, "figure.curve")
    assert [f.get_attribute("data-entry-id") for f in figures] == [curve.entry_id]  # none for the plain entry
    assert not browser.find_elements(By.ID, f"curve-{plain.entry_id}")
    figure = figures[0]
    assert figure.is_displayed() and figure.size["width"] > 300 and figure.size["height"] > 150
    c = curve.collapse
    task = curve.tasks[0]
    panels = figure.find_elements(By.CSS_SELECTOR, "svg.curve-panel")
    assert sorted(p.get_attribute("data-metric") for p in panels) == sorted(curve.metrics)
    for panel in panels:
        assert panel.is_displayed() and panel.size["width"] > 100
        metric = panel.get_attribute("data-metric")
        shown = {(d.get_attribute("data-mode"), d.get_attribute("data-generation")): d
                 for d in panel.find_elements(By.CSS_SELECTOR, "circle.dk")}
        expected = {(m, k): e for m, gens in c.degradation[task].items() for k, per in gens.items()
                    if (e := per[metric]).estimate is not None}
        assert set(shown) == set(expected) and len(shown) == len(c.modes) * c.generations
        for key, e in expected.items():  # the exact D_k and interval, and a visible point
            assert float(shown[key].get_attribute("data-estimate")) == e.estimate
            assert shown[key].get_attribute("data-ci-low") == repr(e.ci_low)
            assert shown[key].get_attribute("data-ci-high") == repr(e.ci_high)
            box = browser.execute_script("var b = arguments[0].getBoundingClientRect(); return [b.width, b.height];",
                                         shown[key])
            assert min(box) > 0
        assert len(panel.find_elements(By.CSS_SELECTOR, "line.ci")) == len(expected)
    rows = figure.find_elements(By.CSS_SELECTOR, "table.claims tbody tr")
    assert [(r.get_attribute("data-claim"), r.get_attribute("data-mode")) for r in rows] == \
        [(cl.claim, cl.mode) for cl in c.claims]
    for row, cl in zip(rows, c.claims, strict=True):
        verdict = row.find_elements(By.TAG_NAME, "td")[2].text
        assert (cl.verdict if cl.claim == "collapse_tail" else next(iter(cl.per_metric.values())).verdict) in verdict
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_a_board_without_curves_has_no_collapse_section(site, browser):
    url, _ = site
    browser.get(url)
    assert browser.execute_script("return document.querySelectorAll('figure.curve, #collapse').length") == 0
