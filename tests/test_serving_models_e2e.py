"""The web page of a real two-model server run with --solve arithmetic, driven in headless Chromium: the
model select is filled from GET /v1/models, and choosing another model reads the image again with it."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fixed_readers import image, reader

from captcha_crnn.arithmetic import CHARSET

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    sums = reader(tmp_path / "sums.onnx", CHARSET, "12×4=")
    digits = reader(tmp_path / "digits.onnx", "0123456789", "12")
    port = free_port()
    command = [sys.executable, "-m", "captcha_crnn", "serve", str(digits), str(sums), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--solve", "arithmetic"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stdout.read().decode()}")
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("server did not start within 60 s")
    yield url, image(tmp_path / "bright.png", True)
    proc.terminate()
    proc.wait(timeout=10)


def test_page_reads_with_the_chosen_model_and_shows_the_answer(server):
    url, picture = server
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("#models option")).to_have_count(2)
            expect(page.locator("#models")).to_have_value("digits")  # the default model comes first
            expect(page.locator("#model")).to_contain_text("0123456789")
            page.set_input_files("#file", str(picture))
            expect(page.locator("#text")).to_have_text("12", timeout=20_000)
            expect(page.locator("#answer")).to_contain_text("no answer: cannot solve '12'")
            page.select_option("#models", "sums")  # the same image, read again by the other model
            expect(page.locator("#text")).to_have_text("12×4=", timeout=20_000)
            expect(page.locator("#answer")).to_have_text("= 48")
            expect(page.locator("#model")).to_contain_text("sums.onnx")
            assert page.locator("#error").inner_text() == ""
        finally:
            browser.close()
