"""The audit dashboard: GET /admin (admin key only) and its stats, over a known set of requests; then the
page in headless Chromium (Debian chromium + chromium-driver, driven with selenium): it shows the known
numbers and an intact chain, logs no console error, and leaves a screenshot in tests/artifacts/."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TEST_POLICY, ProxyProcess, finish_proxy, start_proxy
from fake_upstream import FakeUpstream

from privacy_proxy.access import hash_key
from privacy_proxy.audit_report import build_report

ADMIN, CLIENT = "pp-dashboard-admin", "pp-dashboard-client"
ACCESS = f"""
access:
  keys: [{{name: team, hash: "{hash_key(CLIENT)}"}}]
  admin_key_hash: "{hash_key(ADMIN)}"
"""
ARTIFACTS = Path(__file__).parent / "artifacts"
VALUES = ["John Smith", "jane.doe@example.com", "EMP-123456", "4111 1111 1111 1111"]
# What the known traffic below must add up to.
DECISIONS = {"forward": 3, "block": 1, "reject": 1}
ENTITIES = {"PERSON": 2, "EMAIL_ADDRESS": 1, "EMPLOYEE_ID": 1, "CREDIT_CARD": 1}
BLOCKS = {"entity_blocked": 1}


def chat(proxy: ProxyProcess, text: str) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}/chat/completions", headers={"authorization": f"Bearer {CLIENT}"}, timeout=30,
                      json={"model": "m", "messages": [{"role": "user", "content": text}]})


@pytest.fixture(scope="module")
def audited(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """A proxy with access keys and an admin key, and an audit log of known content."""
    running = start_proxy(TEST_POLICY + ACCESS, tmp_path_factory.mktemp("dashboard"), upstream_server.base_url)
    try:
        upstream_server.reset()
        assert chat(running, "Call John Smith").status_code == 200
        assert chat(running, "Mail jane.doe@example.com and John Smith").status_code == 200
        assert chat(running, "Employee EMP-123456 asked").status_code == 200
        assert chat(running, "Card 4111 1111 1111 1111").status_code == 403
        bad = httpx.post(f"{running.base_url}/chat/completions", headers={"authorization": f"Bearer {CLIENT}"},
                         content=b"{not json")
        assert bad.status_code == 400
        yield running
    finally:
        finish_proxy(running)


def admin_get(proxy: ProxyProcess, path: str, key: str | None = ADMIN) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{proxy.origin}{path}", headers=headers, timeout=30)


def test_the_known_log_adds_up(audited: ProxyProcess) -> None:
    report = build_report(audited.audit_path)
    assert report["decisions"] == DECISIONS and report["entities"] == ENTITIES
    assert report["blocks"]["by_reason"] == BLOCKS


def test_dashboard_and_stats_need_the_admin_key(audited: ProxyProcess) -> None:
    for key in (None, CLIENT, "wrong"):
        page = admin_get(audited, "/admin", key)
        assert page.status_code == 401 and page.json()["error"]["code"] == "invalid_api_key"
        assert page.headers["www-authenticate"].startswith("Basic realm=")  # a browser asks for the key
        assert admin_get(audited, "/admin/audit/stats", key).status_code == 401
    basic = httpx.get(f"{audited.origin}/admin", auth=("anyone", ADMIN))
    assert basic.status_code == 200 and basic.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{audited.origin}/admin", auth=("anyone", CLIENT)).status_code == 401


def test_stats_endpoint_reports_the_log_without_values(audited: ProxyProcess) -> None:
    page = admin_get(audited, "/admin")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "") and "https://" not in page.text
    stats = admin_get(audited, "/admin/audit/stats")
    assert stats.status_code == 200
    body = stats.json()
    assert body["requests"] == 5 and body["decisions"] == DECISIONS and body["entities"] == ENTITIES
    assert body["blocks"]["by_reason"] == BLOCKS
    assert body["chain"]["ok"] is True and body["chain"]["status"] == "intact" and body["chain"]["records"] >= 5
    assert [p["name"] for p in body["policies"]] == ["test"] and body["policies"][0]["requests"] == 5
    assert body["log"] == "audit.jsonl"  # the name, not the host's directory
    dumped = json.dumps(body) + page.text
    for secret in [*VALUES, ADMIN, CLIENT]:
        assert secret not in dumped


def test_dashboard_is_off_without_an_admin_key(proxy: ProxyProcess) -> None:
    for path in ("/admin", "/admin/audit/stats"):
        response = httpx.get(f"{proxy.origin}{path}", headers={"authorization": f"Bearer {ADMIN}"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


# --- the page in a real browser ---------------------------------------------------------------------


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium is not installed (Debian packages chromium and chromium-driver; "
                    "`make test-deps` installs them with apt-get)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    return browser, driver


@pytest.fixture
def browser() -> Iterator[object]:
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1700", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium did not start under chromedriver: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_in_headless_chromium(audited: ProxyProcess, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    # What a browser sends once its login prompt is answered with the admin key as the password.
    login = base64.b64encode(f"admin:{ADMIN}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
    driver.get(f"{audited.origin}/admin")
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true"
        or d.find_element(By.ID, "error").is_displayed())
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text

    def text(selector: str) -> str:
        return (driver.find_element(By.CSS_SELECTOR, selector).get_attribute("textContent") or "").strip()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    driver.save_screenshot(str(shot))
    print(f"dashboard screenshot: {shot}")

    assert text("#card-requests") == "5" and text("#card-blocked") == "1" and text("#card-policies") == "1"
    assert text("#chain-status") == "intact"
    assert "ok" in text("#chain-detail")
    for name, expected in (("decisions", DECISIONS), ("entities", ENTITIES), ("blocks", BLOCKS)):
        shown = {e.get_attribute("data-key"): int(e.get_attribute("textContent"))
                 for e in driver.find_elements(By.CSS_SELECTOR, f'text.value[data-chart="{name}"]')}
        assert shown == expected, name
    bars = driver.find_elements(By.CSS_SELECTOR, "#timeline rect[data-decision]")
    over_time: dict[str, int] = {}
    for bar in bars:
        over_time[bar.get_attribute("data-decision")] = (
            over_time.get(bar.get_attribute("data-decision"), 0) + int(bar.get_attribute("data-count")))
    assert over_time == DECISIONS
    rows = driver.find_elements(By.CSS_SELECTOR, "#policies tbody tr")
    assert len(rows) == 1 and rows[0].get_attribute("data-policy") == "test"
    assert text("#policies tbody tr td.requests") == "5"
    source = driver.page_source
    for secret in VALUES:
        assert secret not in source
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    assert shot.stat().st_size > 10_000
