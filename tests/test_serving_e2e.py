"""The real server on a loopback port, its page driven in headless Chromium with Playwright."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from captcha_crnn import Recognizer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def browser_page():
    """A page in a fresh headless Chromium (a fresh profile per launch), closed afterwards."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(args: list[str], probe: str = "healthz"):
    """`captcha-crnn ARGS --port P` started and answering GET /PROBE; yields its URL, then stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "captcha_crnn", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + probe, timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} exited: {proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{args[0]} did not start within 60 s")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def server(trained_run):
    yield from running(["serve", str(trained_run / "model.pt")])


def test_page_shows_the_latest_reading_when_answers_arrive_out_of_order(server, captcha_dir):
    """A reading asked for before the options last changed, answered after the newer one, is not shown."""
    image = sorted(captcha_dir.glob("*.png"))[5]
    with browser_page() as page:
        # the reading asked for before the length was given reaches the page 1.5 s late
        page.add_init_script(
            """const plain = window.fetch;
            window.fetch = async (url, options) => {
              const response = await plain(url, options);
              if (String(url).includes("recognize") && !String(url).includes("length="))
                await new Promise((done) => setTimeout(done, 1500));
              return response;
            };"""
        )
        page.goto(server)
        sync_api.expect(page.locator("#model")).to_contain_text("0123456789")
        page.locator("summary").click()
        page.fill("#charset", "7")
        page.set_input_files("#file", str(image))  # asked for with charset 7 only: late
        page.fill("#length", "2")
        page.locator("#length").dispatch_event("change")  # asked for second, answered first
        sync_api.expect(page.locator("#text")).to_have_text("77", timeout=20_000)
        page.wait_for_timeout(2500)  # the late answer has come by now
        assert page.locator("#text").inner_text() == "77"


def test_page_reads_an_uploaded_captcha(server, trained_run, captcha_dir):
    image = sorted(captcha_dir.glob("*.png"))[5]
    expected = Recognizer.load(trained_run / "model.pt").predict(image)
    with browser_page() as page:
        page.goto(server)
        sync_api.expect(page.locator("#model")).to_contain_text("0123456789")
        page.set_input_files("#file", str(image))
        sync_api.expect(page.locator("#confidence")).to_contain_text("confidence", timeout=20_000)
        shown = page.locator("#text").inner_text()
        assert shown == (expected.text or "(nothing read)")
        assert f"{100 * expected.confidence:.1f}%" in page.locator("#confidence").inner_text()
        assert page.locator("#preview").is_visible()
        assert page.locator("#error").inner_text() == ""
        # The reading options go to the API: one allowed character, read at the labels' length (4)
        page.locator("summary").click()
        page.fill("#charset", "7")
        page.locator("#charset").dispatch_event("change")
        sync_api.expect(page.locator("#text")).to_have_text("7777", timeout=20_000)
        page.fill("#length", "2")
        page.locator("#length").dispatch_event("change")
        sync_api.expect(page.locator("#text")).to_have_text("77", timeout=20_000)
        page.fill("#length", "x")
        page.locator("#length").dispatch_event("change")
        sync_api.expect(page.locator("#error")).to_contain_text("length", timeout=20_000)
        assert page.locator("#text").inner_text() == ""


def test_an_upload_that_stalls_is_408_within_the_request_timeout(trained_run, captcha_dir):
    """A client that stops sending mid-body must not hold its connection open for ever."""
    for url in running(["serve", str(trained_run / "model.pt"), "--request-timeout", "2"]):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: 1000\r\n\r\n\x89PNG"
            )
            answer = b""
            while chunk := conn.recv(4096):  # the server closes the connection after its answer
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 2 s" in answer
        assert time.monotonic() - start < 6
        image = sorted(captcha_dir.glob("*.png"))[0].read_bytes()  # and the next client is served
        request = urllib.request.Request(url + "v1/recognize", image, {"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "text" in json.loads(response.read())


def test_page_file_chooser_is_reachable_by_keyboard_and_a_failed_reading_can_be_retried(server, captcha_dir):
    image = sorted(captcha_dir.glob("*.png"))[5]
    with browser_page() as page:
        page.goto(server)
        expect, error = sync_api.expect, page.locator("#error")
        expect(page.locator("#model")).to_contain_text("0123456789")
        for _ in range(8):  # models, options, ... : the file chooser is in the tab order
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "file":
                break
        assert page.evaluate("document.activeElement.id") == "file"
        page.route(  # a proxy in front answers with its own HTML error page
            "**/recognize*", lambda route: route.fulfill(status=502, body="<html>Bad Gateway</html>")
        )
        page.set_input_files("#file", str(image))
        expect(error).to_have_text("the server answered 502 Bad Gateway")
        page.unroute("**/recognize*")
        page.set_input_files("#file", str(image))  # the same file again: read again
        expect(page.locator("#confidence")).to_contain_text("confidence", timeout=20_000)
        expect(error).to_have_text("")
