"""The headless-browser check that the offline HTML report is tested with: images that load and images that do
not, console errors, requests off the machine, the full-page screenshot, and the one-line errors."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ipbench.checks.browser import find_chromium, main, open_page
from ipbench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]

if find_chromium() is None:
    pytest.skip("chromium not installed (apt-get install chromium); browser checks skipped", allow_module_level=True)


def png_uri(width: int, height: int, color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_page(folder: Path, name: str, head: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")
    return path


def good_page(folder: Path) -> Path:
    """Two inline images and a 2500 px tall block: everything loads, nothing is logged or requested."""
    images = f"<img src='{png_uri(40, 30, (200, 30, 30))}'><img src='{png_uri(16, 64, (30, 30, 200))}'>"
    return write_page(folder, "good.html", "<title>Good report</title>",
                      images + "<div style='height: 2500px; background: #ddf'></div>")


def bad_page(folder: Path) -> Path:
    """A broken inline image, a missing file, a console.error and an uncaught exception."""
    body = ("<img src='data:image/png;base64,AAAA'><img src='missing.png'>"
            "<script>console.error('boom'); throw new Error('kaput');</script>")
    return write_page(folder, "bad.html", "<title>Bad report</title>", body)


def test_a_clean_page_loads_every_image_and_its_screenshot_covers_the_page(tmp_path: Path, chromium: str) -> None:
    shot = tmp_path / "page.png"
    report = open_page(good_page(tmp_path), screenshot=shot, width=900)
    assert report.title == "Good report"
    assert [(i.natural_width, i.natural_height) for i in report.images] == [(40, 30), (16, 64)]
    assert all(i.complete and i.src.startswith("data:image/png;base64,") for i in report.images)
    assert report.problems() == [] and report.failed_loads == []
    assert report.screenshot == shot
    with Image.open(shot) as image:
        assert image.format == "PNG"
        assert image.width == 900 and image.height >= 2500


def test_a_broken_page_reports_its_images_and_errors(tmp_path: Path, chromium: str) -> None:
    report = open_page(bad_page(tmp_path))
    assert [i.natural_width for i in report.images] == [0, 0]
    assert all(i.complete for i in report.images)
    problems = report.problems()
    assert "image not loaded: data:image/png;base64,AAAA" in problems
    assert any(p.startswith("image not loaded: file:") and p.endswith("missing.png") for p in problems)
    assert "boom" in report.console_errors
    assert any("kaput" in e for e in report.console_errors)
    assert any("missing.png" in f for f in report.failed_loads)
    assert report.screenshot is None and report.external_requests == []


def test_requests_off_the_machine_are_recorded_and_fail(tmp_path: Path, chromium: str) -> None:
    """Offline, a request fails at once (no host name resolves, the proxy is a closed port): the page loads
    within open_page's own timeout, which raises otherwise, and both requests are failed loads."""
    head = "<title>Online</title><script src='http://example.com/x.js'></script>"
    page = write_page(tmp_path, "online.html", head, "<img src='https://example.org/logo.png'>")
    report = open_page(page)
    assert report.external_requests == ["http://example.com/x.js", "https://example.org/logo.png"]
    assert len(report.failed_loads) == 2  # offline: neither was answered
    assert "external request: http://example.com/x.js" in report.problems()


def test_the_command_line_exits_0_on_a_clean_page_and_1_on_a_broken_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chromium: str) -> None:
    shot = tmp_path / "shot.png"
    assert main([str(good_page(tmp_path)), "--screenshot", str(shot), "--width", "640"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{tmp_path / 'good.html'}: 2/2 images loaded", f"screenshot: {shot}"]
    assert main([str(bad_page(tmp_path))]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("bad.html: 0/2 images loaded")
    assert "console error: boom" in out


def test_the_command_line_gives_one_line_and_status_2_for_a_missing_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ipbench.checks.browser", str(tmp_path / "nope.html")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {tmp_path / 'nope.html'}: no such HTML file"]


def test_a_missing_browser_named_by_the_variable_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPBENCH_CHROMIUM", str(tmp_path / "no-chromium"))
    assert find_chromium() == str(tmp_path / "no-chromium")
    with pytest.raises(UsageError, match="IPBENCH_CHROMIUM=.*no-chromium.*apt-get install chromium") as caught:
        open_page(good_page(tmp_path))
    assert "\n" not in str(caught.value)


def test_no_browser_on_path_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPBENCH_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() is None
    with pytest.raises(UsageError, match="no Chromium found.*apt-get install chromium.*IPBENCH_CHROMIUM"):
        open_page(good_page(tmp_path))


def _fake_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """IPBENCH_CHROMIUM pointed at a shell script that plays a misbehaving browser."""
    fake = tmp_path / "fake-browser"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IPBENCH_CHROMIUM", str(fake))


def test_a_browser_that_never_answers_times_out_with_its_last_words_and_is_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake browser says its last words, then signals (a file) that it has, so the timeout cannot come
    before them however slow the machine; then it never answers, and closing kills it."""
    from ipbench.checks.browser import _Chromium

    said = tmp_path / "said"
    _fake_browser(tmp_path, monkeypatch, f"echo starting >&2\necho 'stuck on something' >&2\ntouch '{said}'\n"
                                         "exec sleep 600")
    browser = _Chromium(os.environ["IPBENCH_CHROMIUM"], tmp_path, timeout=1)
    try:
        for _ in range(6000):  # up to 60 s for a shell to start on a loaded machine
            if said.exists():
                break
            time.sleep(0.01)
        assert said.exists(), "the fake browser did not start"
        with pytest.raises(UsageError, match=r"did not answer within 1 s .*last words: stuck on something$"):
            browser.call("Target.createTarget", {"url": "about:blank"})
    finally:
        browser.close()
    assert browser.process.poll() is not None  # killed, not left running


def test_a_browser_that_quits_at_once_is_a_one_line_error_with_its_last_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_browser(tmp_path, monkeypatch, "echo 'cannot start here' >&2\nexit 3")
    with pytest.raises(UsageError, match=r"^Chromium quit \(exit status 3\) .*last words: cannot start here$"):
        open_page(good_page(tmp_path), timeout=10)


def test_a_browser_gone_before_the_first_command_is_the_same_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing to a browser that has already exited (a broken pipe, not an empty read) is no traceback."""
    from ipbench.checks.browser import _Chromium

    _fake_browser(tmp_path, monkeypatch, "echo 'cannot start here' >&2\nexit 3")
    browser = _Chromium(os.environ["IPBENCH_CHROMIUM"], tmp_path, timeout=10)
    browser.process.wait()
    try:
        with pytest.raises(UsageError, match=r"^Chromium quit \(exit status 3\) .*last words: cannot start here$"):
            browser.call("Target.createTarget", {"url": "about:blank"})
    finally:
        browser.close()
