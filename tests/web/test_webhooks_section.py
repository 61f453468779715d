"""CRM webhooks in the browser (PRODUCT.md §6 "CRM телефония", docs/webhooks.md): a client
administrator adds a webhook, sees it listed, the write-only secret is never shown back,
"Проверить" reports the CRM's answer (a refused port, then a real receiver on loopback that
checks the signature), and delete asks first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from cloudpbx.services.webhooks import verify

from .conftest import Site, labelled_fields, shot
from .test_cabinets import login, open_section, start_create

SECRET = "whsec-web-test-0123456789"
REFUSED_URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bool]]]:
    """A CRM on a free loopback port: answers 204 and records whether each signature held."""
    checks: list[bool] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            checks.append(
                verify(
                    SECRET,
                    self.headers["X-Cloudpbx-Timestamp"],
                    body,
                    self.headers["X-Cloudpbx-Signature"],
                    now=time.time(),
                )
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", checks
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_create_test_and_delete(
    page: Page, site: Site, receiver: tuple[str, list[bool]]
) -> None:
    """CRM webhooks: create, list, secret write-only on edit, test delivery, delete."""
    login(page, site, "client_admin")
    open_section(page, "Вебхуки (CRM)")
    start_create(page, "Вебхуки (CRM)")
    page.get_by_label("Адрес (URL)").fill(REFUSED_URL)
    page.get_by_label("Секрет подписи").fill(SECRET)
    page.locator(".mantine-MultiSelect-input").click()  # the pills box takes the click
    page.get_by_role("option", name="answered — ответ").click()
    page.get_by_role("option", name="ended — завершение").click()
    page.keyboard.press("Escape")
    page.get_by_label("Описание").fill("amoCRM")
    assert labelled_fields(page) == []
    shot(page, "webhook-form")
    page.get_by_role("button", name="Сохранить").click()

    row = page.get_by_role("row").filter(has_text=REFUSED_URL)
    expect(row).to_contain_text("answered, ended")
    expect(row).to_contain_text("Да")
    expect(row).to_contain_text("amoCRM")
    shot(page, "webhooks-list")

    # Open it: the secret is write-only, so the field is empty (empty keeps it).
    page.get_by_role("cell", name=REFUSED_URL, exact=True).click()
    expect(page.get_by_label("Адрес (URL)")).to_have_value(REFUSED_URL)
    expect(page.get_by_label("Секрет подписи")).to_have_value("")
    page.get_by_role("button", name="Проверить").click()
    result = page.get_by_test_id("webhook-test-result")
    expect(result).to_contain_text("Не доставлено")
    expect(result).to_contain_text("ConnectError")

    # A real CRM: change only the URL (the stored secret stays), test again.
    url, checks = receiver
    page.get_by_label("Адрес (URL)").fill(url)
    page.get_by_role("button", name="Сохранить").click()
    page.get_by_role("cell", name=url, exact=True).click()
    page.get_by_role("button", name="Проверить").click()
    expect(result).to_contain_text("Доставлено")
    expect(result).to_contain_text("HTTP 204")
    assert checks == [True]
    shot(page, "webhook-test-ok")
    page.get_by_role("button", name="Закрыть").click()

    page.get_by_role("button", name=f"Удалить {url}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Удалить «{url}»?")
    dialog.get_by_role("button", name="Удалить").click()
    expect(page.get_by_text("Нет записей")).to_be_visible()
