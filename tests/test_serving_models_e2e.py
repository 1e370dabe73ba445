"""The web page of a real two-model server run with --solve arithmetic, driven in headless Chromium: the
model select is filled from GET /v1/models, and choosing another model reads the image again with it."""

import pytest
from fixed_readers import image, reader
from test_serving_e2e import browser_page, running, sync_api

from captcha_crnn.arithmetic import CHARSET


@pytest.fixture
def server(tmp_path):
    sums = reader(tmp_path / "sums.onnx", CHARSET, "12×4=")
    digits = reader(tmp_path / "digits.onnx", "0123456789", "12")
    args = ["serve", str(digits), str(sums), "--solve", "arithmetic"]
    for url in running(args):
        yield url, image(tmp_path / "bright.png", True)


def test_page_reads_with_the_chosen_model_and_shows_the_answer(server):
    url, picture = server
    expect = sync_api.expect
    with browser_page() as page:
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
