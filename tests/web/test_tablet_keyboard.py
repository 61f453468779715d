"""Issue 6 §7 in a real browser: a tablet in portrait (768×1024) gets the menu behind a
burger and lists that still fit; the login form and a create form work from the keyboard
alone (focus order, Enter submits, Escape closes dialogs); every field has a label."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import PASSWORD, Site, labelled_fields, shot
from .test_cabinets import LEVEL_TITLES, login


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_tablet_menu_is_a_burger_and_lists_fit(page: Page, site: Site) -> None:
    """Issue 6 §7: at 768×1024 the side menu folds into a burger; a list and a form fit."""
    page.set_viewport_size({"width": 768, "height": 1024})
    login(page, site, "client_admin")
    ports = page.get_by_test_id("side-menu").get_by_role("link", name="Порты", exact=True)
    expect(ports).not_to_be_in_viewport()
    burger = page.get_by_role("button", name="Меню")
    expect(burger).to_be_visible()
    burger.click()
    expect(ports).to_be_in_viewport()
    shot(page, "tablet-menu-open")
    ports.click()
    expect(page.get_by_role("heading", name="Порты", exact=True)).to_be_visible()
    expect(ports).not_to_be_in_viewport()  # choosing a section folds the menu again
    row = page.get_by_role("row").filter(has_text="Линия 2")
    expect(row).to_be_in_viewport()
    assert no_horizontal_scroll(page)
    page.get_by_label("Поиск").fill("Линия")
    expect(row).to_be_visible()
    shot(page, "tablet-ports")
    row.get_by_role("cell", name="Линия 2", exact=True).click()
    expect(page.get_by_label("Название")).to_have_value("Линия 2")
    assert no_horizontal_scroll(page)
    assert labelled_fields(page) == []
    page.get_by_role("tab", name="Ограничения").click()
    assert labelled_fields(page) == []
    shot(page, "tablet-port-form")


def test_login_with_the_keyboard(page: Page, site: Site) -> None:
    """Issue 6 §7: the login field has the focus, Tab goes to the password, Enter logs in."""
    page.goto(site.url + "/")
    expect(page.get_by_label("Логин")).to_be_focused()
    assert labelled_fields(page) == []
    page.keyboard.type(site.logins["client_admin"])
    page.keyboard.press("Tab")
    expect(page.get_by_label("Пароль")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("user-level")).to_have_text(LEVEL_TITLES["client_admin"])


def test_create_form_with_the_keyboard(page: Page, site: Site) -> None:
    """Issue 6 §7: Создать by Enter, the first field focused, Tab through the fields in
    order to Сохранить, Enter in a field saves; Escape closes the delete dialog."""
    login(page, site, "client_admin")
    page.get_by_test_id("side-menu").get_by_role("link", name="Внутренние номера").click()
    page.get_by_role("button", name="Создать").focus()
    page.keyboard.press("Enter")
    number = page.get_by_label("Номер")
    expect(number).to_be_focused()
    assert labelled_fields(page) == []
    page.keyboard.type("300")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Название")).to_be_focused()
    page.keyboard.type("Склад")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Описание")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Сохранить")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_label("Название")).to_be_focused()
    page.keyboard.press("Enter")
    row = page.get_by_role("row").filter(has_text="Склад")
    expect(row).to_contain_text("300")

    page.get_by_role("button", name="Удалить 300").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Удалить «300»?")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(row).to_be_visible()
