"""Headless Chromium driven by Selenium, for the console's browser tests and its screenshots.

Uses Debian's packages (`chromium`, `chromium-driver`): the system chromedriver is named explicitly, so Selenium
never tries to download a driver, and every background network feature of Chromium is off (offline machines).
"""

import os
import shutil
import tempfile

DEBIAN_PACKAGES = "chromium chromium-driver"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing():
    """Why a browser cannot be started here (a one-line reason), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return "%s not found: install the Debian packages %s" % (path, DEBIAN_PACKAGES)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed: pip install -r requirements-dev.txt"
    return None


class Browser:
    def __init__(self, width=1360, height=900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="console-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--user-data-dir=" + self.profile, "--window-size=%d,%d" % (width, height),
                  "--force-device-scale-factor=1"):
            opts.add_argument(a)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(60)

    def login(self, base, user, password):
        from selenium.webdriver.common.by import By

        d = self.driver
        d.get(base + "/login")
        d.find_element(By.NAME, "user").send_keys(user)
        d.find_element(By.NAME, "password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "form button").click()

    def cookie(self, name="session"):
        c = self.driver.get_cookie(name)
        return c["value"] if c else None

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
