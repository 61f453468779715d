"""The seed's walkthrough, first part, in a real browser (issue 6 §3, §8; NUM-2, PRT-1):
create internal number 100 and port "Линия 1" through the forms and see them listed; API
errors appear on the field they name; delete asks first."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import Site, shot
from .test_cabinets import login, open_section, start_create


def test_create_internal_number_100(page: Page, site: Site) -> None:
    """NUM-2: Ресурс нумерации → Внутренние номера → Создать, 100, Сохранить (seed fig. 1)."""
    login(page, site, "client_admin")
    open_section(page, "Внутренние номера")
    start_create(page, "Внутренние номера")
    page.get_by_label("Номер").fill("100")
    page.get_by_label("Название").fill("Приёмная")
    shot(page, "internal-number-form")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_role("cell", name="100", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Приёмная", exact=True)).to_be_visible()
    shot(page, "internal-numbers-list")

    # The same number again: the API's 409 is shown on the Номер field.
    start_create(page, "Внутренние номера")
    page.get_by_label("Номер").fill("100")
    page.get_by_role("button", name="Сохранить").click()
    number = page.get_by_label("Номер")
    expect(number).to_have_attribute("aria-invalid", "true")
    error = page.locator(".mantine-TextInput-error")
    expect(error).to_contain_text("100")
    page.get_by_role("button", name="Закрыть").click()

    # Search finds it; delete asks for confirmation first.
    start_create(page, "Внутренние номера")
    page.get_by_label("Номер").fill("150")
    page.get_by_role("button", name="Сохранить").click()
    page.get_by_label("Поиск").fill("15")
    expect(page.get_by_role("cell", name="100", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Удалить 150").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Удалить «150»?")
    dialog.get_by_role("button", name="Удалить").click()
    expect(page.get_by_text("Ничего не найдено")).to_be_visible()


def test_create_port_line_1(page: Page, site: Site) -> None:
    """PRT-1: a port "Линия 1" with the seed's tabs Общие, ДВО, Ограничения."""
    login(page, site, "client_admin")
    open_section(page, "Порты")
    start_create(page, "Порты")
    page.get_by_label("Название").fill("Линия 1")
    page.get_by_label("SIP логин").fill("x")
    page.get_by_role("button", name="Сохранить").click()
    # 422 from the API's pattern check, shown under SIP логин.
    expect(page.get_by_label("SIP логин")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("SIP логин").fill("line1")

    page.get_by_role("tab", name="ДВО").click()
    page.get_by_label("Автоматическая запись").check()
    page.get_by_label("Замена гудков").check()
    page.get_by_role("tab", name="Ограничения").click()
    page.get_by_label("Количество входящих").fill("2")
    shot(page, "port-form-limits")
    page.get_by_role("button", name="Сохранить").click()

    expect(page.get_by_role("cell", name="Линия 1", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="line1", exact=True)).to_be_visible()
    shot(page, "ports-list")

    # Reopen: what was saved is what the form shows.
    page.get_by_role("cell", name="Линия 1", exact=True).click()
    expect(page.get_by_label("Название")).to_have_value("Линия 1")
    page.get_by_role("tab", name="ДВО").click()
    expect(page.get_by_label("Автоматическая запись")).to_be_checked()
    expect(page.get_by_label("Замена гудков")).to_be_checked()
    page.get_by_role("tab", name="Ограничения").click()
    expect(page.get_by_label("Количество входящих")).to_have_value("2")
