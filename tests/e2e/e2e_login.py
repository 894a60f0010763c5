"""A person at Keycloak's login and consent pages, for the end-to-end suite.

Two interchangeable drivers answer one question: "open this authorization URL,
log in as USER, accept or deny consent, and tell me where the browser ended
up" (the client's loopback redirect URI, with ``code``/``error``, ``state``
and ``iss``).

* ``BrowserLogin`` drives a real headless Chromium (Debian's ``chromium``
  package) through Playwright: it types into the login form and clicks the
  consent buttons, and takes a PNG screenshot of the consent page at the moment
  consent is given.
* ``HttpLogin`` is the browserless fallback: it GETs the same pages with httpx
  and posts Keycloak's ``kc-form-login`` form and the consent form, following
  redirects by hand until the redirect URI.

With ``identity_provider=ALIAS`` the person logs in through that identity
provider instead (a brokered login): both drivers click, or follow, the
realm's ``social-ALIAS`` button and answer the provider's own login page.

``login_driver()`` picks the browser when ``/usr/bin/chromium`` (or
``KCPROV_E2E_CHROMIUM``) exists and Playwright imports, else the fallback;
``KCPROV_E2E_LOGIN=browser|http`` forces one.
"""

from __future__ import annotations

import html
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

CHROMIUM_FLAGS = [
    # Known to work on this machine kind (no sandbox as root, no GPU, and no
    # background connections: the network is closed and refusals pile up).
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_CHROMIUM = "/usr/bin/chromium"

Consent = Literal["accept", "deny"]


class LoginError(AssertionError):
    """The pages did not behave like Keycloak's login/consent pages."""


@dataclass
class LoginResult:
    """What happened between opening the authorization URL and reaching the redirect URI."""

    callback_url: str
    #: Visible text of the consent page when it was answered (None: no consent page was shown).
    consent_text: str | None = None
    #: PNG of the consent page taken just before answering (browser only).
    screenshot: Path | None = None
    #: Visible text of every page seen, in order (for failure messages).
    pages: list[str] = field(default_factory=list)


def _visible_text(page_html: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page_html, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


class HttpLogin:
    """Browserless: Keycloak's forms posted with httpx, cookies carried by hand.

    Keycloak marks its login cookies ``Secure`` even on http://localhost (which
    browsers treat as a secure context); Python's cookie jar would not send
    them over http, so a plain dict carries them.
    """

    kind = "browserless (httpx posting Keycloak's kc-form-login and consent forms)"

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def close(self) -> None:
        pass

    def authorize(
        self,
        url: str,
        *,
        username: str,
        password: str,
        redirect_uri: str,
        consent: Consent = "accept",
        screenshot: Path | None = None,
        identity_provider: str | None = None,
    ) -> LoginResult:
        # (name, path) -> value: a brokered login passes two realms, whose cookies share names (Path=/realms/<realm>/).
        jar: dict[tuple[str, str], str] = {}
        result = LoginResult(callback_url="")
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as http:

            def send(method: str, target: str, data: dict[str, str] | None = None) -> httpx.Response:
                path = urlsplit(target).path
                cookies = [f"{k}={v}" for (k, scope), v in jar.items() if path.startswith(scope)]
                headers = {"cookie": "; ".join(cookies)} if cookies else {}
                response = http.request(method, target, data=data, headers=headers)
                for cookie in response.headers.get_list("set-cookie"):
                    name, _, value = cookie.split(";", 1)[0].partition("=")
                    scope = re.search(r";\s*path=([^;]*)", cookie, re.I)
                    key = (name.strip(), scope[1].strip() if scope else "/")
                    if re.search(r"max-age=0\b", cookie, re.I):
                        jar.pop(key, None)
                    else:
                        jar[key] = value
                return response

            response = send("GET", url)
            logged_in, brokered = False, identity_provider is None
            for _ in range(20):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(redirect_uri):
                        send("GET", location)  # the client's loopback listener sees the redirect too
                        result.callback_url = location
                        return result
                    response = send("GET", location)
                    continue
                page = response.text
                result.pages.append(_visible_text(page))
                if response.status_code != 200:
                    raise LoginError(f"HTTP {response.status_code} from {response.url}: {result.pages[-1][:500]}")
                form = _form(page, 'id="kc-form-login"')
                if form and not brokered:
                    # Brokered: follow the identity provider's button; its own login form comes next.
                    brokered = True
                    alias = re.escape(identity_provider or "")
                    button = re.search(rf'<a\b[^>]*\bid="social-{alias}"[^>]*\bhref="([^"]*)"', page)
                    if button is None:
                        raise LoginError(f"no button for identity provider {identity_provider!r} at {response.url}")
                    response = send("GET", urljoin(str(response.url), html.unescape(button[1])))
                    continue
                if form and not logged_in:
                    logged_in = True
                    action, fields = form
                    fields.update(username=username, password=password)
                    response = send("POST", urljoin(str(response.url), action), fields)
                    continue
                form = _form(page, "login-actions/consent")
                if form:
                    action, fields = form
                    result.consent_text = result.pages[-1]
                    if screenshot is not None:
                        # No pixels without a browser: keep the page itself as the record.
                        screenshot.with_suffix(".html").write_text(page)
                    # The form's two submit buttons: name="accept" (Yes) and name="cancel" (No).
                    fields.update({"accept": "Yes"} if consent == "accept" else {"cancel": "No"})
                    response = send("POST", urljoin(str(response.url), action), fields)
                    continue
                raise LoginError(f"unexpected page at {response.url}: {result.pages[-1][:500]}")
        raise LoginError(f"no redirect to {redirect_uri} after 20 steps: {result.pages[-3:]}")


def _form(page: str, marker: str) -> tuple[str, dict[str, str]] | None:
    """(action, hidden fields) of the first form whose HTML contains ``marker``."""
    for match in re.finditer(r"<form\b[^>]*>.*?</form>", page, flags=re.S | re.I):
        text = match.group(0)
        if marker not in text:
            continue
        action = re.search(r'action="([^"]*)"', text)
        if not action:
            continue
        fields = {
            html.unescape(name): html.unescape(value)
            for name, value in re.findall(r'<input\b[^>]*\bname="([^"]+)"[^>]*\bvalue="([^"]*)"', text)
        }
        return html.unescape(action.group(1)), fields
    return None


class BrowserLogin:
    """A real headless Chromium driven by Playwright, the way a person uses the pages.

    Playwright's sync API must stay on the thread that started it, and the MCP
    SDK calls the redirect handler from an event loop, so one worker thread owns
    the browser and runs each login as a job. Every login gets a fresh browser
    context (no cookies, no SSO session), like a new private window.
    """

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.executable = executable
        self.timeout_ms = int(timeout * 1000)
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        ready: Future[str] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="e2e-browser", daemon=True)
        self._thread.start()
        self.version = ready.result(timeout=120)
        self.kind = f"real browser (headless Chromium {self.version} via Playwright)"

    def _run(self, ready: Future[str]) -> None:
        try:
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
            # Playwright gives every launch a fresh, empty user-data dir of its own.
            browser = playwright.chromium.launch(executable_path=self.executable, args=CHROMIUM_FLAGS, headless=True)
        except BaseException as exc:  # report start failures to the caller
            ready.set_exception(exc)
            return
        ready.set_result(browser.version)
        try:
            while (job := self._jobs.get()) is not None:
                work, future = job
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(work(browser))
                    except BaseException as exc:
                        future.set_exception(exc)
        finally:
            browser.close()
            playwright.stop()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=60)

    def authorize(
        self,
        url: str,
        *,
        username: str,
        password: str,
        redirect_uri: str,
        consent: Consent = "accept",
        screenshot: Path | None = None,
        identity_provider: str | None = None,
    ) -> LoginResult:
        future: Future[LoginResult] = Future()
        self._jobs.put(
            (
                lambda browser: self._authorize(
                    browser, url, username, password, redirect_uri, consent, screenshot, identity_provider
                ),
                future,
            )
        )
        return future.result(timeout=self.timeout_ms / 1000 * 3)

    def _authorize(
        self,
        browser: Any,
        url: str,
        username: str,
        password: str,
        redirect_uri: str,
        consent: Consent,
        screenshot: Path | None,
        identity_provider: str | None = None,
    ) -> LoginResult:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        context.set_default_timeout(self.timeout_ms)
        page = context.new_page()
        result = LoginResult(callback_url="")
        at_redirect_uri = re.compile("^" + re.escape(redirect_uri))
        try:
            page.goto(url)
            # Login page, consent page, or straight back to the client (consent already given).
            login, consent_button = page.locator("#kc-form-login"), page.locator("#kc-cancel")
            _wait_for_any(page, [login, consent_button], at_redirect_uri, self.timeout_ms)
            if login.count() and identity_provider is not None:
                # Brokered: the person clicks the identity provider's button on the realm's login
                # page and logs in at the identity provider's own login page (a form of the same id).
                result.pages.append(page.inner_text("body"))
                with page.expect_navigation():
                    page.locator(f"#social-{identity_provider}").click()
                _wait_for_any(page, [login, consent_button], at_redirect_uri, self.timeout_ms)
            if login.count():
                result.pages.append(page.inner_text("body"))
                page.get_by_label(re.compile("username|email", re.I)).first.fill(username)
                page.locator("#password").fill(password)
                page.locator("#kc-login").click()
                _wait_for_any(
                    page,
                    [consent_button, page.locator("#input-error, .pf-m-danger, .alert-error")],
                    at_redirect_uri,
                    self.timeout_ms,
                )
            if consent_button.count():
                result.consent_text = page.inner_text("body")
                result.pages.append(result.consent_text)
                if screenshot is not None:
                    page.screenshot(path=str(screenshot), full_page=True)
                    result.screenshot = screenshot
                if consent == "accept":
                    page.get_by_role("button", name="Yes").click()
                else:
                    page.get_by_role("button", name="No").click()
            elif not at_redirect_uri.match(page.url):
                result.pages.append(page.inner_text("body"))
                raise LoginError(f"stuck at {page.url}: {result.pages[-1][:500]}")
            page.wait_for_url(at_redirect_uri)
            page.wait_for_load_state()
            result.callback_url = page.url
            return result
        finally:
            context.close()


def _wait_for_any(page: Any, locators: list[Any], url: re.Pattern[str], timeout_ms: int) -> None:
    """Until one locator is visible or the page is at ``url``."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        if url.match(page.url) or any(loc.count() and loc.first.is_visible() for loc in locators):
            return
        page.wait_for_timeout(100)
    raise LoginError(f"timed out at {page.url}: {page.inner_text('body')[:500]}")


def chromium_executable() -> str | None:
    candidate = os.environ.get("KCPROV_E2E_CHROMIUM", DEFAULT_CHROMIUM)
    return candidate if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def login_driver() -> tuple[BrowserLogin | HttpLogin, str]:
    """The driver to use and why it was chosen."""
    forced = os.environ.get("KCPROV_E2E_LOGIN", "").strip().lower()
    if forced not in ("", "browser", "http"):
        raise ValueError(f"KCPROV_E2E_LOGIN={forced!r}: expected browser or http")
    executable = chromium_executable()
    if forced == "http":
        return HttpLogin(), "KCPROV_E2E_LOGIN=http"
    if executable is None:
        if forced == "browser":
            raise RuntimeError(
                f"KCPROV_E2E_LOGIN=browser but no Chromium at {DEFAULT_CHROMIUM} (run .ci/install-browser)"
            )
        return HttpLogin(), f"no Chromium at {os.environ.get('KCPROV_E2E_CHROMIUM', DEFAULT_CHROMIUM)}"
    try:
        import playwright  # noqa: F401
    except ImportError:
        if forced == "browser":
            raise
        return HttpLogin(), "playwright is not installed"
    return BrowserLogin(executable), f"Chromium at {executable}"


__all__ = ["BrowserLogin", "HttpLogin", "LoginError", "LoginResult", "login_driver"]
