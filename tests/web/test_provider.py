"""The provider's cabinets in a real browser (issue 6 §2, ADM-1, ADM-6, ADM-7, TRK-1):
operators with their rewrite rules, tariffs with their rates, the system's users, a client's
billing account with a payment, the audit log; API errors shown in Russian."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import Site, api_client, labelled_fields, shot
from .test_cabinets import login, menu, open_section, start_create
from .test_components import pick


def test_system_administrator_menu_has_every_provider_section(page: Page, site: Site) -> None:
    """ADM-1: the system administrator's Администрирование group lists its sections."""
    login(page, site, "system_admin")
    items = menu(page)
    for section in ("Клиенты", "Операторы", "Тарифы", "Пользователи системы", "Журнал изменений"):
        assert section in items, items


def test_clients_administrator_menu_hides_system_sections(page: Page, site: Site) -> None:
    """ADM-1: the clients administrator reads tariffs and the log, not operators or staff."""
    login(page, site, "clients_admin")
    items = menu(page)
    assert "Тарифы" in items
    assert "Журнал изменений" in items
    assert "Операторы" not in items
    assert "Пользователи системы" not in items


def test_operator_with_rewrite_rules(page: Page, site: Site) -> None:
    """TRK-1: an operator with registration, its addresses and an inbound rewrite rule;
    the API's refusals appear in Russian on the field (host, the rule's pattern)."""
    login(page, site, "system_admin")
    open_section(page, "Операторы")
    start_create(page, "Операторы")
    page.get_by_label("Название").fill("Ростелеком")
    page.get_by_label("Адрес (хост или IP)").fill("http://sip.rt.ru")
    assert labelled_fields(page) == []
    page.get_by_role("tab", name="Аутентификация").click()
    page.get_by_label("Регистрироваться у оператора").check()
    page.get_by_label("Имя пользователя").fill("trunk42")
    page.get_by_label("Пароль").fill("trunk-secret")
    page.get_by_label("Адреса оператора (IP или сети)").fill("198.51.100.0/24\n203.0.113.7")
    assert labelled_fields(page) == []
    page.get_by_role("tab", name="Преобразование номеров").click()
    page.get_by_role("button", name="Добавить").click()
    page.get_by_label("Шаблон").fill("^8(\\d{10}")
    page.get_by_label("Замена").fill("+7\\1")
    assert labelled_fields(page) == []
    page.get_by_role("button", name="Сохранить").click()

    # The host first: the API's message, in Russian, under Адрес (its tab opened).
    host = page.get_by_label("Адрес (хост или IP)")
    expect(host).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".mantine-TextInput-error").first).to_contain_text("Имя хоста или IP-адрес")
    host.fill("sip.rt.ru")
    page.get_by_role("button", name="Сохранить").click()
    # Then the unbalanced pattern, on its cell of the rules table.
    expect(page.get_by_label("Шаблон")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Неверное регулярное выражение")).to_be_visible()
    page.get_by_label("Шаблон").fill("^8(\\d{10})$")
    shot(page, "operator-rewrite-rules")
    page.get_by_role("button", name="Сохранить").click()

    row = page.get_by_role("row").filter(has_text="Ростелеком")
    expect(row).to_contain_text("sip.rt.ru:5060 (UDP)")
    expect(row.get_by_role("cell").nth(3)).to_have_text("1")
    shot(page, "operators-list")
    row.get_by_role("cell", name="Ростелеком", exact=True).click()
    page.get_by_role("tab", name="Преобразование номеров").click()
    expect(page.get_by_label("Шаблон")).to_have_value("^8(\\d{10})$")
    page.get_by_role("tab", name="Аутентификация").click()
    expect(page.get_by_label("Адреса оператора (IP или сети)")).to_have_value(
        "198.51.100.0/24\n203.0.113.7"
    )


def test_tariff_with_rates_per_direction(page: Page, site: Site) -> None:
    """ADM-6: a tariff, then its rates on the Ставки tab; a second rate for the same prefix
    is the API's 409, shown in Russian on Префикс."""
    login(page, site, "system_admin")
    open_section(page, "Тарифы")
    start_create(page, "Тарифы")
    page.get_by_label("Название").fill("Базовый")
    assert labelled_fields(page) == []
    page.get_by_role("button", name="Сохранить").click()
    page.get_by_role("tab", name="Ставки").click()
    for prefix, direction, price in (("7495", "Москва", "1.50"), ("7", "Россия", "3.20")):
        page.get_by_role("tabpanel").get_by_role("button", name="Создать").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Префикс").fill(prefix)
        dialog.get_by_label("Направление").fill(direction)
        dialog.get_by_label("Цена минуты").fill(price)
        assert labelled_fields(page) == []
        dialog.get_by_role("button", name="Сохранить").click()
        expect(page.get_by_role("cell", name=direction, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="1.50", exact=True)).to_be_visible()

    page.get_by_role("tabpanel").get_by_role("button", name="Создать").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Префикс").fill("7495")
    dialog.get_by_label("Цена минуты").fill("2")
    dialog.get_by_role("button", name="Сохранить").click()
    expect(dialog.get_by_label("Префикс")).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_contain_text("Для префикса 7495 в этом тарифе уже есть ставка")
    shot(page, "tariff-rates")
    page.keyboard.press("Escape")  # issue 6 §7: Escape closes the dialog
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_system_user_created_with_russian_validation(page: Page, site: Site) -> None:
    """ADM-1: the system administrator creates a clients administrator; a short password
    is refused with pydantic's rule in Russian."""
    login(page, site, "system_admin")
    open_section(page, "Пользователи системы")
    start_create(page, "Пользователи системы")
    page.get_by_label("Логин").fill("support1")
    page.get_by_label("Пароль").fill("short")
    page.get_by_label("ФИО").fill("Петров Пётр")
    assert labelled_fields(page) == []
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_label("Пароль")).to_have_attribute("data-invalid", "true")
    expect(page.locator(".mantine-PasswordInput-error")).to_have_text("Не короче 10 символов")
    page.get_by_label("Пароль").fill("long-enough-password")
    page.get_by_role("button", name="Сохранить").click()
    row = page.get_by_role("row").filter(has_text="support1")
    expect(row).to_contain_text("Администратор клиентов")
    shot(page, "system-users")


def test_clients_administrator_sets_billing_account_and_records_a_payment(
    page: Page, site: Site
) -> None:
    """ADM-6: the clients administrator assigns a tariff and tops the balance up; the payment
    is listed from the audit log (ADM-7)."""
    with api_client(site, "system_admin") as api:
        api.post("/tariffs", json={"name": "Бизнес"}).raise_for_status()
    login(page, site, "clients_admin")
    open_section(page, "Клиенты")
    page.get_by_role("cell", name="Рога и копыта", exact=True).click()
    page.get_by_role("tab", name="Биллинговый счёт").click()
    figures = page.get_by_test_id("billing-figures")
    expect(figures).to_contain_text(f"BA-{site.client_id}")
    expect(figures).to_contain_text("Тариф не назначен")
    pick(page, "Тариф", "Бизнес (RUB)")
    page.get_by_role("button", name="Сохранить счёт").click()
    expect(figures).to_contain_text("Бизнес")

    page.get_by_label("Сумма").fill("0")
    page.get_by_label("Сумма").press("Enter")  # Enter submits the payment, not the client
    expect(page.get_by_text("Платёж не может быть нулевым")).to_be_visible()
    page.get_by_label("Сумма").fill("1000")
    page.get_by_label("Комментарий").fill("Счёт 17")
    assert labelled_fields(page) == []
    page.get_by_role("button", name="Зачислить платёж").click()
    expect(figures).to_contain_text("1000.00 RUB")
    payments = page.get_by_role("table", name="Платежи")
    expect(payments).to_contain_text("Счёт 17")
    expect(payments).to_contain_text("1000.00")
    shot(page, "billing-account")


def test_audit_log_shows_before_and_after(page: Page, site: Site) -> None:
    """ADM-7: Журнал изменений lists who changed what; an entry opens with before/after."""
    with api_client(site, "system_admin") as api:
        created = api.post("/tariffs", json={"name": "Старый"})
        created.raise_for_status()
        api.patch(f"/tariffs/{created.json()['id']}", json={"name": "Новый"}).raise_for_status()
    login(page, site, "system_admin")
    open_section(page, "Журнал изменений")
    page.get_by_label("Объект").first.click()
    page.get_by_role("option", name="Тариф", exact=True).click()
    pick(page, "Действие", "Изменение")
    log = page.get_by_role("table", name="Журнал изменений")
    expect(log).not_to_contain_text("Создание")  # the filters applied
    row = log.get_by_role("row").filter(has_text="root").first
    expect(row).to_contain_text("Тариф")
    row.click()
    changes = page.get_by_role("table", name="Изменения")
    name_row = changes.get_by_role("row").filter(has_text="name")
    expect(name_row).to_contain_text("Старый")
    expect(name_row).to_contain_text("Новый")
    shot(page, "audit-entry")
    page.keyboard.press("Escape")
    expect(changes).to_have_count(0)


def test_delete_in_use_lists_the_usages_in_russian(page: Page, site: Site) -> None:
    """Issue 2 §6: deleting an operator numbers arrive through is refused (409 in_use); the
    dialog lists the numbers in Russian and "Удалить и убрать ссылки" detaches them."""
    with api_client(site, "system_admin") as api:
        operator = api.post("/operators", json={"name": "МТС", "host": "sip.mts.ru"})
        operator.raise_for_status()
        api.post(
            f"/clients/{site.client_id}/external-numbers",
            json={"number": "+74951112233", "operator_id": operator.json()["id"]},
        ).raise_for_status()
    login(page, site, "system_admin")
    open_section(page, "Операторы")
    page.get_by_role("button", name="Удалить МТС").click()
    page.get_by_role("dialog").get_by_role("button", name="Удалить").click()
    dialog = page.get_by_role("dialog").filter(has_text="Объект используется")
    expect(dialog.get_by_test_id("usages")).to_contain_text("внешний номер «+74951112233»")
    shot(page, "delete-in-use")
    dialog.get_by_role("button", name="Удалить и убрать ссылки").click()
    expect(page.get_by_role("cell", name="МТС", exact=True)).to_have_count(0)


def test_english_interface_shows_the_server_message(page: Page, site: Site) -> None:
    """Issue 6 §7: the English UI shows the API's own message (here a 409 on name)."""
    with api_client(site, "system_admin") as api:
        api.post("/tariffs", json={"name": "Duplicate"}).raise_for_status()
    login(page, site, "system_admin")
    page.get_by_text("EN", exact=True).click()
    page.get_by_test_id("side-menu").get_by_role("link", name="Tariffs", exact=True).click()
    page.get_by_role("button", name="Create").click()
    page.get_by_label("Name").fill("Duplicate")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("'Duplicate' is already in use")).to_be_visible()
    page.get_by_text("RU", exact=True).click()


def test_number_checks_are_shown_in_russian(page: Page, site: Site) -> None:
    """NUM-1/NUM-2: the API's number checks (numbers.py) appear in Russian on the field."""
    login(page, site, "client_admin")
    open_section(page, "Внутренние номера")
    start_create(page, "Внутренние номера")
    page.get_by_label("Номер").fill("12a")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_label("Номер")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".mantine-TextInput-error")).to_have_text(
        "Внутренний номер состоит только из цифр"
    )
