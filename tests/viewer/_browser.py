"""Headless Chromium (Debian's chromium + chromium-driver) driven by selenium, for the viewer
tests (../shared/notes/viewer-browser-check.md: flags, waits, pitfalls)."""

from __future__ import annotations

import io
import shutil
import tempfile
import time

import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--disable-dev-shm-usage", "--window-size=900,700"]


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) or None when either is missing."""
    b = shutil.which("chromium") or shutil.which("chromium-browser")
    d = shutil.which("chromedriver")
    return (b, d) if b and d else None


class Browser:
    """One headless page with a fixed viewport."""

    def __init__(self, width: int = 800, height: int = 600):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        binary, driver = chromium_paths()
        opts = webdriver.ChromeOptions()
        opts.binary_location = binary
        self._profile = tempfile.mkdtemp(prefix="instgs-chromium-")
        for f in FLAGS + [f"--user-data-dir={self._profile}"]:
            opts.add_argument(f)
        self.driver = webdriver.Chrome(service=Service(driver), options=opts)
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.size = (width, height)

    def open(self, url: str, timeout: float = 60) -> None:
        """Load the page and wait for viser's websocket ("Connected")."""
        from selenium.webdriver.common.by import By

        self.driver.get(url)
        self.wait(lambda: self.driver.find_elements(By.TAG_NAME, "canvas"), timeout)
        self.close_toasts()

    def wait(self, cond, timeout: float = 60, every: float = 0.25):
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                v = cond()
            except Exception:  # noqa: BLE001 - elements appear and vanish while React renders
                v = None
            if v:
                return v
            time.sleep(every)
        raise TimeoutError("browser condition not met")

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def close_toasts(self) -> None:
        """Close viser's 'software WebGL' notification (it covers the canvas)."""
        from selenium.webdriver.common.by import By

        for b in self.driver.find_elements(By.CSS_SELECTOR, ".mantine-Notification-closeButton"):
            try:
                b.click()
            except Exception:  # noqa: BLE001
                pass

    def shot(self) -> np.ndarray:
        """[H, W, 3] uint8 screenshot of the viewport."""
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def stable_shot(self, timeout: float = 60) -> np.ndarray:
        """A screenshot after two consecutive ones 1 s apart are identical."""
        prev = self.shot()
        t0 = time.time()
        while time.time() - t0 < timeout:
            time.sleep(1.0)
            cur = self.shot()
            if np.array_equal(cur, prev):
                return cur
            prev = cur
        return prev

    def input_by_label(self, label: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(
            By.XPATH, f"//label[normalize-space()='{label}']/ancestor::*[.//input][1]//input")

    def button(self, label: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']")

    def panel_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of viser's floating control panel (the smallest ancestor of the
        "Connected" label that also holds the last control), to leave out of statistics."""
        return self.driver.execute_script("""
            const all = [...document.querySelectorAll('*')];
            const top = all.find(e => e.childElementCount === 0 &&
                                      e.textContent.trim() === 'Connected');
            const last = all.filter(e => e.childElementCount === 0 &&
                                         e.textContent.trim() === 'Exact render').pop();
            if (!top || !last) return null;
            let e = top;
            while (e.parentElement && !e.contains(last)) e = e.parentElement;
            const r = e.getBoundingClientRect();
            return [Math.floor(r.left), Math.floor(r.top), Math.ceil(r.right),
                    Math.ceil(r.bottom)];""")

    def click_at(self, x: int, y: int, shift: bool = False) -> None:
        """Click the canvas at viewport pixel (x, y)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        canvas = self.driver.find_element(By.TAG_NAME, "canvas")
        r = canvas.rect
        chain = ActionChains(self.driver)
        if shift:
            chain = chain.key_down(Keys.SHIFT)
        chain = chain.move_to_element_with_offset(canvas, int(x - r["width"] / 2),
                                                  int(y - r["height"] / 2)).click()
        if shift:
            chain = chain.key_up(Keys.SHIFT)
        chain.perform()

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)
