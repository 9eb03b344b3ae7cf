"""The web page in headless Chromium (Debian's chromium + chromium-driver, selenium),
against a real ``kuairec serve``: load it, choose a user, check the list against the
API, switch models, build a new user's history by clicking videos.

``KUAIREC_SCREENSHOT=path.png`` keeps a screenshot of the final page (docs/serving.md's
picture is made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import _kuairec_fixtures as fx  # on sys.path through tests/conftest.py
import httpx
import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = (*fx.CHROMIUM_FLAGS, "--window-size=1500,1100")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium / chromium-driver are not installed; .ci/run installs them")
        pytest.skip("chromium and chromium-driver not installed (apt-get install them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def _list_ids(driver, list_id: str) -> list[int]:
    from selenium.webdriver.common.by import By

    items = driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li")
    return [int(li.get_attribute("data-video-id")) for li in items]


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _api_ids(url: str, path: str, **kw) -> list[int]:
    r = httpx.request("POST" if "json" in kw else "GET", url + path, timeout=10, **kw)
    return [row["video_id"] for row in r.json()["items"]]


def test_page_user_lists_model_switch_and_new_history(browser, live_server: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url = live_server
    default = httpx.get(url + "/models").json()["default_model"]
    browser.get(url + "/")
    _wait(browser, lambda d: _text(d, "status") == "ready")
    first_user = int(browser.find_element(By.ID, "user-input").get_attribute("value"))
    expect = _api_ids(url, f"/users/{first_user}/recommendations?k=10&model={default}")
    assert _list_ids(browser, "user-recs") == expect
    assert len(_list_ids(browser, "user-history")) > 0

    users = httpx.get(url + "/users", params={"limit": 5}).json()["user_ids"]
    box = browser.find_element(By.ID, "user-input")
    box.clear()
    box.send_keys(str(users[3]))
    browser.find_element(By.ID, "user-go").click()
    expect = _api_ids(url, f"/users/{users[3]}/recommendations?k=10&model={default}")
    _wait(browser, lambda d: _list_ids(d, "user-recs") == expect)
    assert "舞" in browser.page_source or browser.find_elements(By.CSS_SELECTOR, ".chip.cat")

    Select(browser.find_element(By.ID, "model-select")).select_by_value("als")
    _wait(browser, lambda d: _text(d, "user-recs-model") == "by als")
    expect = _api_ids(url, f"/users/{users[3]}/recommendations?k=10&model=als")
    _wait(browser, lambda d: _list_ids(d, "user-recs") == expect)

    videos = _list_ids(browser, "video-browser")
    before = _list_ids(browser, "new-recs")
    browser.find_element(By.CSS_SELECTOR, "#video-browser li:nth-child(1)").click()
    browser.find_element(By.CSS_SELECTOR, "#video-browser li:nth-child(4)").click()
    _wait(browser, lambda d: _list_ids(d, "new-history") == [videos[0], videos[3]])
    history = [{"video_id": v, "watch_ratio": 1.5} for v in (videos[0], videos[3])]
    expect = _api_ids(url, "/recommendations", json={"history": history, "model": "als"})
    _wait(browser, lambda d: _list_ids(d, "new-recs") == expect)
    assert expect != before

    Select(browser.find_element(By.ID, "model-select")).select_by_value("bpr")
    _wait(browser, lambda d: "cannot score" in _text(d, "new-error"))
    Select(browser.find_element(By.ID, "model-select")).select_by_value("ease")
    _wait(browser, lambda d: _text(d, "new-recs-model").startswith("by ease"))
    shot = os.environ.get("KUAIREC_SCREENSHOT")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(shot)
