"""The report: sections, charts, untrusted text kept inert, and the page in headless Chromium."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from wordofclick.cli import main
from wordofclick.nightly import NightlySettings, run_nightly
from wordofclick.report import CHARTS, PRODUCT_COLOR, SERVICE_COLOR, build_report, report_run_id
from wordofclick.store import Store

D1, D2 = date(2026, 11, 18), date(2026, 11, 19)
SCRIPT = "<script>alert(1)</script>"
EVIL_COMPANY = '<img src=x onerror=alert(1)> "Evil" & Co'
CHROMIUM = Path("/usr/bin/chromium")


def reviews(day: date, start: int, count: int) -> list[dict]:
    companies = ("Acme Rail", "Bistro $5 $$ Menu", EVIL_COMPANY, "Delta Bank")
    return [
        {
            "review_id": f"r{i}",
            "company": companies[i % len(companies)],
            "text": f"review {i}: rude staff, hung up on me",
            "created_at": f"{day}T10:00:00Z",
            "channel": ("twitter", "review_site", "facebook")[i % 3],
            "shares": i,
            "likes": 3 * i,
        }
        for i in range(start, start + count)
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_dir):
    """A store with two nights (one review text is a script) and its report."""
    root = tmp_path_factory.mktemp("report")
    xss = {"review_id": "xss", "company": "Acme Rail", "text": f"Awful. {SCRIPT} never again",
           "created_at": f"{D1}T09:00:00Z", "channel": "twitter", "shares": 10_000, "likes": 1}
    day1 = root / "in" / "day1.jsonl"
    day2 = root / "in" / "day2.jsonl"
    day1.parent.mkdir()
    day1.write_text("".join(json.dumps(r) + "\n" for r in [xss, *reviews(D1, 0, 12)]))
    day2.write_text("".join(json.dumps(r) + "\n" for r in reviews(D2, 12, 8)))
    settings = NightlySettings(input=[str(day1.parent)], store=str(root / "woc.duckdb"),
                               model=str(tiny_model_dir), report=None, train_config=None,
                               num_threads=1)
    for day in (D1, D2):
        run_nightly(settings, date=day, events=io.StringIO())
    with Store.open(settings.store) as store:
        # The random tiny model decides nothing reliably: make the script review evidence.
        store.con.execute(
            "UPDATE predictions SET pred_service_complaint = true WHERE review_id = 'xss'"
        )
        latest = store.con.execute(
            "SELECT run_id FROM runs ORDER BY logical_date DESC LIMIT 1"
        ).fetchall()[0][0]
        page = build_report(store, root / "report", top=8)
    return SimpleNamespace(root=root, store=Path(settings.store), page=page, latest=latest,
                           html=page.read_text(encoding="utf-8"))


def test_report_has_every_section_and_its_charts(built):
    html = built.html
    for section in ("ranking", "changes", "trends", "split", "evidence", "models", "runs"):
        assert f'<section id="{section}">' in html
    for chart in CHARTS:
        assert (built.page.parent / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{chart}"' in html
    assert f"as of {D2}" in html
    assert f"Compared with the previous run's date, {D1}" in html
    assert "tiny:test" in html  # which model produced the numbers
    assert report_run_id(built.page.parent) == built.latest


def test_untrusted_text_comes_out_escaped_and_inert(built):
    html = built.html
    assert SCRIPT not in html and "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &quot;Evil&quot; &amp; Co" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_report_command_and_an_empty_store(built, tmp_path):
    result = CliRunner().invoke(main, ["report", "--store", str(built.store),
                                       "--out", str(tmp_path / "again"), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again" / "index.html").is_file()

    Store.open(tmp_path / "empty.duckdb").close()
    page = build_report(tmp_path / "empty.duckdb", tmp_path / "empty")
    assert "no company scores yet" in page.read_text(encoding="utf-8")
    assert not any((tmp_path / "empty" / chart).exists() for chart in CHARTS)
    assert report_run_id(tmp_path / "empty") is None

    missing = CliRunner().invoke(main, ["report", "--store", str(tmp_path / "nope.duckdb"),
                                        "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2


def _colour_pixels(image: np.ndarray, colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[..., :3].astype(int) - rgb).sum(axis=2) <= tolerance).sum())


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium_with_its_charts(built, tmp_path):
    from matplotlib.image import imread

    def chromium(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"profile-{len(args)}"
        return subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
             built.page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        )

    dom = chromium("--dump-dom").stdout
    assert f"as of {D2}" in dom
    assert "<script" not in dom.lower()  # the review's script stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert dom.count("<img ") == len(CHARTS)

    shot = tmp_path / "page.png"
    chromium("--window-size=1200,6000", f"--screenshot={shot}")
    image = imread(shot)
    if image.dtype != np.uint8:
        image = (image * 255).round().astype(np.uint8)
    # Only the charts use these colours: without loaded images there would be none.
    assert _colour_pixels(image, SERVICE_COLOR) > 500
    assert _colour_pixels(image, PRODUCT_COLOR) > 2000
