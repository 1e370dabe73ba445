"""The labelling page in headless Chromium, keyboard only: label, skip, go back, reload, find it saved."""

import csv
import shutil

import pytest
from test_serving_e2e import browser_page, running, sync_api


@pytest.fixture
def workbench(tmp_path, captcha_dir):
    folder = tmp_path / "todo"
    folder.mkdir()
    truth = dict(list(csv.reader((captcha_dir / "labels.csv").open()))[1:7])
    for name in truth:
        shutil.copy(captcha_dir / name, folder / name)
    args = ["label", str(folder), "--model", "none", "--order", "name", "--charset", "0123456789"]
    for url in running(args, probe="api/status"):
        yield url, folder, truth


def test_keyboard_only_labelling_survives_a_reload(workbench):
    url, folder, truth = workbench
    names = sorted(truth)
    with browser_page() as page:
        page.goto(url)
        expect, box = sync_api.expect, page.locator("#label")
        expect(page.locator("#current")).to_have_attribute("alt", names[0])
        expect(box).to_be_focused()
        page.keyboard.type(truth[names[0]])
        page.keyboard.press("Enter")
        expect(page.locator("#current")).to_have_attribute("alt", names[1])
        page.keyboard.type("12x")  # outside the charset: said inline, and refused by the server
        expect(page.locator("#error")).to_contain_text("not in the charset")
        page.keyboard.press("Enter")
        expect(page.locator("#error")).to_contain_text("'x'")
        page.keyboard.press("Escape")  # skip it
        expect(page.locator("#current")).to_have_attribute("alt", names[2])
        page.keyboard.type(truth[names[2]])
        page.keyboard.press("Enter")
        expect(page.locator("#current")).to_have_attribute("alt", names[3])
        page.keyboard.press("Control+z")  # back to the last saved one, its label shown
        expect(page.locator("#current")).to_have_attribute("alt", names[2])
        expect(box).to_have_value(truth[names[2]])
        page.keyboard.type("0000")  # typing replaces the selected label
        page.keyboard.press("Enter")
        page.reload()
        expect(page.locator("#progress")).to_contain_text("2 / 6 labelled")
        expect(page.locator("#current")).to_have_attribute("alt", names[3])
    rows = {r[0]: r[1] for r in list(csv.reader((folder / "labels.csv").open()))[1:]}
    assert rows == {names[0]: truth[names[0]], names[2]: "0000"}


def test_keys_pressed_while_a_label_is_saving_do_not_relabel_the_image(workbench):
    """A fast typist's next label, typed before the page has moved on, must not overwrite this one's."""
    url, folder, truth = workbench
    names = sorted(truth)
    with browser_page() as page:
        page.add_init_script(  # every saved label is answered 1 s late
            """const plain = window.fetch;
            window.fetch = async (url, options) => {
              const response = await plain(url, options);
              if (String(url).includes("api/label")) await new Promise((done) => setTimeout(done, 1000));
              return response;
            };"""
        )
        page.goto(url)
        expect = sync_api.expect
        expect(page.locator("#current")).to_have_attribute("alt", names[0])
        page.keyboard.type(truth[names[0]])
        page.keyboard.press("Enter")
        page.keyboard.type("1111")  # meant for the next image, typed before it is shown
        page.keyboard.press("Enter")
        expect(page.locator("#current")).to_have_attribute("alt", names[1])
        page.wait_for_timeout(1500)  # a second save, had one been sent, has been answered by now
        expect(page.locator("#progress")).to_contain_text("1 / 6 labelled")
    rows = {r[0]: r[1] for r in list(csv.reader((folder / "labels.csv").open()))[1:]}
    assert rows == {names[0]: truth[names[0]]}


def test_holding_enter_saves_one_label_not_every_suggestion(tmp_path, captcha_dir, trained_run):
    """Key repeat is not a user accepting the next suggestions, which they have not even seen."""
    folder = tmp_path / "todo"
    folder.mkdir()
    names = sorted(p.name for p in captcha_dir.glob("*.png"))[:6]
    for name in names:
        shutil.copy(captcha_dir / name, folder / name)
    args = ["label", str(folder), "--model", str(trained_run / "model.pt"), "--order", "name"]
    for url in running(args, probe="api/status"):
        with browser_page() as page:
            page.goto(url)
            sync_api.expect(page.locator("#suggestion")).to_contain_text("model:")
            for _ in range(12):  # held down for ~0.6 s: the first press, then repeats
                page.keyboard.down("Enter")
                page.wait_for_timeout(50)
            page.keyboard.up("Enter")
            sync_api.expect(page.locator("#current")).to_have_attribute("alt", names[1])
            page.wait_for_timeout(500)
            sync_api.expect(page.locator("#progress")).to_contain_text("1 / 6 labelled")
    assert len(list(csv.reader((folder / "labels.csv").open()))) == 2  # the header and one row


def test_a_failed_request_says_so_and_the_page_carries_on(workbench):
    url, folder, truth = workbench
    names = sorted(truth)
    with browser_page() as page:
        page.goto(url)
        expect, error = sync_api.expect, page.locator("#error")
        expect(page.locator("#current")).to_have_attribute("alt", names[0])
        page.route("**/api/label", lambda route: route.abort())  # the server has gone away
        page.keyboard.type(truth[names[0]])
        page.keyboard.press("Enter")
        expect(error).to_contain_text("cannot be reached")
        expect(page.locator("#current")).to_have_attribute("alt", names[0])
        page.unroute("**/api/label")
        page.route(  # back, but its next image fails: a plain-text 500
            "**/api/next", lambda route: route.fulfill(status=500, body="Internal Server Error")
        )
        page.keyboard.press("Enter")
        expect(error).to_contain_text("the server answered 500")
        page.unroute("**/api/next")
        page.keyboard.press("Escape")  # try again
        expect(page.locator("#current")).to_have_attribute("alt", names[1])
        expect(error).to_have_text("")
        expect(page.locator("#progress")).to_contain_text("1 / 6 labelled")
    rows = {r[0]: r[1] for r in list(csv.reader((folder / "labels.csv").open()))[1:]}
    assert rows == {names[0]: truth[names[0]]}
