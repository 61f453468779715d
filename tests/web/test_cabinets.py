"""Personal cabinets in a real browser (issue 6 §2, §8): login, menus by rights, language."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import PASSWORD, Site, shot

LEVEL_TITLES = {
    "system_admin": "Администратор системы",
    "clients_admin": "Администратор клиентов",
    "client_admin": "Администратор клиента",
    "client_user": "Пользователь клиента",
}


def login(page: Page, site: Site, level: str) -> None:
    page.goto(site.url + "/")
    page.get_by_label("Логин").fill(site.logins[level])
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    expect(page.get_by_test_id("user-level")).to_have_text(LEVEL_TITLES[level])


def open_section(page: Page, name: str) -> None:
    page.get_by_test_id("side-menu").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def start_create(page: Page, title: str) -> None:
    """Press Создать on a section's list and wait for its form."""
    page.get_by_role("button", name="Создать").click()
    expect(page.get_by_role("heading", name=f"{title}: Создать")).to_be_visible()


def menu(page: Page) -> list[str]:
    labels = page.get_by_test_id("side-menu").locator(".mantine-NavLink-label")
    expect(labels.first).to_be_visible()
    return [label.strip() for label in labels.all_inner_texts()]


def test_wrong_password_is_refused_on_the_page(page: Page, site: Site) -> None:
    """ADM-7: a wrong password shows the error and stays on the login page."""
    page.goto(site.url + "/clients")
    page.get_by_label("Логин").fill("root")
    page.get_by_label("Пароль").fill("not the password")
    page.get_by_role("button", name="Войти").click()
    expect(page.get_by_role("alert")).to_contain_text("Неверный логин или пароль")
    shot(page, "login-error")


def test_system_administrator_sees_administration_then_a_clients_sections(
    page: Page, site: Site
) -> None:
    """ADM-1: the system administrator's cabinet lists clients; opening one shows its sections."""
    login(page, site, "system_admin")
    items = menu(page)
    assert "Администрирование" in items
    assert "Клиенты" in items
    assert "Порты" not in items
    open_section(page, "Клиенты")
    row = page.get_by_role("row").filter(has_text="Рога и копыта")
    row.get_by_role("button", name="Личный кабинет").click()
    expect(page.get_by_role("heading", name="Клиент: Рога и копыта")).to_be_visible()
    items = menu(page)
    for section in ("Ресурс нумерации", "Внутренние номера", "Порты", "Группы перехвата"):
        assert section in items, items
    shot(page, "system-admin-client-sections")


def test_clients_administrator_sees_clients(page: Page, site: Site) -> None:
    """ADM-1: the clients administrator manages clients and nothing of the system's own."""
    login(page, site, "clients_admin")
    items = menu(page)
    assert "Клиенты" in items
    open_section(page, "Клиенты")
    expect(page.get_by_role("cell", name="Рога и копыта", exact=True)).to_be_visible()


def test_client_user_sees_only_own_numbers(page: Page, site: Site) -> None:
    """ADM-1: a client user's menu has only the sections of its own numbers."""
    login(page, site, "client_user")
    assert menu(page) == [
        "Главная",
        "Ресурс нумерации",
        "Внутренние номера",
        "Внешние номера",
        "Детализация вызовов",
        "Статистика",
        "Активные вызовы",
    ]
    open_section(page, "Внутренние номера")
    expect(page.get_by_role("cell", name="200", exact=True)).to_be_visible()
    # Read-only for the user: nothing to create.
    expect(page.get_by_role("button", name="Создать")).to_have_count(0)
    shot(page, "client-user-numbers")


def test_language_switch_to_english_and_back(page: Page, site: Site) -> None:
    """Issue 6 §7: Russian by default, English on request, remembered across reloads."""
    login(page, site, "client_admin")
    assert "Порты" in menu(page)
    page.get_by_text("EN", exact=True).click()
    expect(page.get_by_test_id("user-level")).to_have_text("Client administrator")
    assert "Ports" in menu(page)
    page.reload()
    assert "Internal numbers" in menu(page)
    page.get_by_text("RU", exact=True).click()
    assert "Внутренние номера" in menu(page)
