"""The graphical dialplan editor in a real browser (issue 6 §4, §8; DP-1…DP-7).

The seed's walkthrough (figures 2–9) built in the graph: internal number 100 → "Диалплан",
a click on free space creates step 1 (SIP, port "Линия 1", timeout 5 s), another click step 2
(Звуковое сообщение), step 1's Нет ответа → step 2, Save, reload. Then the DP-5 checks drawn
on the boxes, the 409 of a concurrent save, the test call (DP-6) and a recorded call's path
(DP-7) highlighted on the graph.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudpbx.db.base import now_ms
from cloudpbx.db.models import Call, Dialplan, DialplanVersion, InternalNumber
from cloudpbx.db.session import make_engine

from .conftest import Site, shot, wav_bytes
from .test_cabinets import login, open_section, start_create


class Api:
    """The API as the logged-in page: its session cookie, and the CSRF token that
    GET /auth/me gives back for that session."""

    def __init__(self, page: Page, site: Site) -> None:
        self.request = page.request
        self.base = f"{site.url}/api/v1/clients/{site.client_id}"
        me = self.request.get(f"{site.url}/api/v1/auth/me")
        assert me.ok, me.text()
        self.headers = {"X-CSRF-Token": me.json()["csrf_token"]}

    def get(self, path: str) -> Any:
        response = self.request.get(self.base + path)
        assert response.ok, response.text()
        return response.json()

    def send(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.request.fetch(
            self.base + path, method=method, data=body, headers=self.headers
        )
        assert response.status == status, response.text()
        return response.json() if response.body() else None

    def find(self, collection: str, **match: Any) -> dict[str, Any] | None:
        items = self.get(f"/{collection}?limit=500")["items"]
        return next((i for i in items if all(i.get(k) == v for k, v in match.items())), None)

    def ensure(self, collection: str, body: dict[str, Any], **match: Any) -> dict[str, Any]:
        found = self.find(collection, **match)
        return found or self.send("POST", f"/{collection}", body, status=201)

    def media_file(self, name: str) -> dict[str, Any]:
        """MED-1: a media file with uploaded audio in the default pack."""
        found = self.find("media-files", name=name)
        if found:
            return found
        pack = self.get("/media-packs")["items"][0]
        item = self.send("POST", "/media-files", {"pack_id": pack["id"], "name": name}, 201)
        upload = self.request.post(
            f"{self.base}/media-files/{item['id']}/audio",
            multipart={
                "file": {"name": f"{name}.wav", "mimeType": "audio/wav", "buffer": wav_bytes()}
            },
            headers=self.headers,
        )
        assert upload.ok, upload.text()
        return item


def seed_plan(api: Api, number: str, login_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The seed's two-step dialplan made through the API: port → no answer 5 s → message."""
    internal = api.ensure("internal-numbers", {"number": number, "name": ""}, number=number)
    port = api.ensure(
        "ports", {"name": f"Порт {number}", "sip_login": login_name}, sip_login=login_name
    )
    media = api.media_file("moh")
    steps = [
        {
            "level": 1,
            "action": "ring_port",
            "target": {"kind": "port", "id": port["id"]},
            "timeout": 5,
            "conditions": {"no_answer": 2},
        },
        {"level": 2, "action": "play_message", "target": {"kind": "media_file", "id": media["id"]}},
    ]
    body = {"internal_number_id": internal["id"], "steps": steps, "name": number}
    plan = api.send("POST", "/dialplans", body, status=201)
    return internal, plan


def pick(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the Mantine select labelled ``label`` (a textbox, not the tab)."""
    page.get_by_role("textbox", name=label, exact=True).click()
    page.get_by_role("option", name=option).click()


def open_dialplan(page: Page, number: str) -> None:
    """Seed figure 2: the number's "Диалплан" button opens the graphical editor."""
    open_section(page, "Внутренние номера")
    page.get_by_role("button", name=f"Диалплан {number}", exact=True).click()
    expect(page.get_by_role("heading", name=f"Диалплан номера {number}")).to_be_visible()


def click_free_space(page: Page, x: int, y: int) -> None:
    page.get_by_test_id("dialplan-graph").locator(".react-flow__pane").click(
        position={"x": x, "y": y}
    )


def box(page: Page, level: int) -> Any:
    return page.get_by_test_id(f"step-{level}")


def test_seed_two_step_dialplan_built_in_the_graph(page: Page, site: Site) -> None:
    """DP-1…DP-3, seed figures 1–9: number 100, port Линия 1, then the graph: step 1 rings the
    port for 5 s, Нет ответа → step 2 plays a sound message; saved, and there after a reload."""
    login(page, site, "client_admin")
    Api(page, site).media_file("moh")
    open_section(page, "Внутренние номера")
    start_create(page, "Внутренние номера")
    page.get_by_label("Номер").fill("100")
    page.get_by_role("button", name="Сохранить").click()
    open_section(page, "Порты")
    start_create(page, "Порты")
    page.get_by_label("Название").fill("Линия 1")
    page.get_by_label("SIP логин").fill("line1")
    page.get_by_role("button", name="Сохранить").click()
    row = page.get_by_role("row").filter(has_text="Линия 1")
    expect(row).to_contain_text("движок не запущен")  # PRT-1: no engine in this test server

    open_dialplan(page, "100")
    expect(page.get_by_text("Щёлкните мышью на любом свободном месте")).to_be_visible()
    click_free_space(page, 320, 90)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Новый шаг 1")
    expect(dialog.get_by_role("textbox", name="Действие")).to_have_value("SIP")
    pick(page, "Порт", "Линия 1")
    dialog.get_by_label("Таймаут").fill("5")
    shot(page, "dialplan-step-1-action")
    dialog.get_by_role("button", name="Готово").click()
    expect(box(page, 1)).to_contain_text("SIP Линия 1")
    expect(box(page, 1)).to_contain_text("Таймаут: 5 с")
    expect(box(page, 1)).to_contain_text("любые дни, любое время")

    # Step 2 (seed figure 5): a sound message; alone it is unreachable, a yellow warning.
    click_free_space(page, 320, 330)
    expect(dialog).to_contain_text("Новый шаг 2")
    pick(page, "Действие", "Звуковое сообщение")
    pick(page, "Медиафайл", "moh")
    dialog.get_by_role("tab", name="Условия").click()
    expect(dialog.get_by_test_id("step-level")).to_have_text("2")  # seed figure 6
    dialog.get_by_role("button", name="Готово").click()
    expect(box(page, 2)).to_contain_text("Звуковое сообщение moh")
    expect(box(page, 2)).to_have_attribute("data-state", "warning")

    # Seed figures 7–8: step 1's Нет ответа → step 2 draws the arrow between the boxes.
    box(page, 1).click()
    dialog.get_by_role("tab", name="Условия").click()
    pick(page, "Нет ответа", "Шаг 2")
    shot(page, "dialplan-step-1-conditions")
    dialog.get_by_role("button", name="Готово").click()
    edge = page.locator(".react-flow__edge.edge-1-2")
    expect(edge).to_contain_text("Нет ответа")
    expect(box(page, 2)).to_have_attribute("data-state", "ok")

    # Boxes can be moved; where they are is saved with the version (its layout).
    before = box(page, 2).bounding_box()
    assert before is not None
    page.mouse.move(before["x"] + 60, before["y"] + 12)
    page.mouse.down()
    page.mouse.move(before["x"] + 160, before["y"] + 22, steps=8)
    page.mouse.move(before["x"] + 260, before["y"] + 32, steps=8)
    page.mouse.up()
    moved = box(page, 2).bounding_box()
    assert moved is not None
    assert moved["x"] > before["x"] + 150

    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Сохранено: версия 1")).to_be_visible()
    shot(page, "dialplan-seed-saved")

    page.reload()
    expect(box(page, 1)).to_contain_text("SIP Линия 1")
    expect(box(page, 2)).to_contain_text("Звуковое сообщение moh")
    one, two = box(page, 1).bounding_box(), box(page, 2).bounding_box()
    assert one is not None
    assert two is not None
    assert two["x"] > one["x"] + 100  # still where it was moved to
    expect(page.locator(".react-flow__edge.edge-1-2")).to_contain_text("Нет ответа")
    expect(page.get_by_text("версия 1", exact=True)).to_be_visible()

    # Close without changes goes back to the numbers.
    page.get_by_role("button", name="Закрыть").click()
    expect(page.get_by_role("heading", name="Внутренние номера", exact=True)).to_be_visible()


def test_validation_errors_on_the_boxes_and_a_concurrent_save(page: Page, site: Site) -> None:
    """DP-5: a step without its target is outlined red with the server's message naming it,
    and Save is refused; step 1 cannot be deleted; a save over someone else's is a 409."""
    login(page, site, "client_admin")
    api = Api(page, site)
    _, plan = seed_plan(api, "110", "line110")
    open_dialplan(page, "110")
    expect(box(page, 2)).to_be_visible()

    box(page, 1).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Удалить шаг")).to_be_disabled()
    dialog.get_by_role("button", name="Отмена").click()

    click_free_space(page, 40, 40)
    expect(dialog).to_contain_text("Новый шаг 3")
    expect(dialog).to_contain_text("Выберите, куда направить вызов")
    dialog.get_by_role("button", name="Готово").click()
    expect(box(page, 3)).to_have_attribute("data-state", "error")
    expect(box(page, 3).get_by_role("alert").first).to_contain_text("step 3")
    page.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_text("Диалплан не сохранён")).to_be_visible()
    expect(box(page, 3)).to_have_attribute("data-state", "error")
    shot(page, "dialplan-validation-error")

    # Fix it as a hang-up: valid, though unreachable (a warning does not block saving) ...
    box(page, 3).click()
    pick(page, "Действие", "Отбой")
    dialog.get_by_role("button", name="Готово").click()
    expect(box(page, 3)).to_have_attribute("data-state", "warning")
    # ... but someone else saved version 2 in the meantime.
    steps = api.get(f"/dialplans/{plan['id']}")["steps"]
    api.send("PUT", f"/dialplans/{plan['id']}/steps", {"steps": steps, "base_version": 1})
    page.get_by_role("button", name="Сохранить").click()
    conflict = page.get_by_role("dialog")
    expect(conflict).to_contain_text("Диалплан изменён другим пользователем")
    shot(page, "dialplan-conflict")
    conflict.get_by_role("button", name="Загрузить текущую версию").click()
    expect(page.get_by_text("версия 2", exact=True)).to_be_visible()
    expect(box(page, 3)).to_have_count(0)

    # Versions (DP-4): version 1 can be opened read-only and restored as version 3.
    page.get_by_role("button", name="Версии").click()
    versions = page.get_by_test_id("versions")
    expect(versions.get_by_role("row")).to_have_count(3)
    versions.get_by_role("row").nth(2).get_by_role("button", name="Восстановить").click()
    confirm = page.get_by_role("dialog", name="Восстановить версию 1?")
    confirm.get_by_role("button", name="Восстановить").click()
    expect(page.get_by_text("версия 3", exact=True)).to_be_visible()


def test_test_call_highlights_the_path(page: Page, site: Site) -> None:
    """DP-6: the simulator's path on the graph — port not registered: step 1, then no route
    ends the call (480); registered but no answer: 1 → Нет ответа → 2, the message plays."""
    login(page, site, "client_admin")
    seed_plan(Api(page, site), "120", "line120")
    open_dialplan(page, "120")
    page.get_by_role("button", name="Тестовый звонок").click()
    panel = page.get_by_test_id("simulator")
    panel.get_by_label("Кто звонит").fill("+79161234567")
    pick(page, "Порт Порт 120", "Не зарегистрирован")
    panel.get_by_role("button", name="Позвонить").click()
    outcome = panel.get_by_test_id("simulation-outcome")
    expect(outcome).to_contain_text("Нет маршрута")
    expect(outcome).to_contain_text("SIP 480")
    expect(box(page, 1)).to_have_attribute("data-path", "1")
    expect(box(page, 2)).not_to_have_attribute("data-path", "1")
    expect(panel.get_by_test_id("path-list")).to_contain_text("Нет маршрута")
    expect(page.locator(".edge-taken")).to_have_count(0)
    shot(page, "simulator-no-route")

    pick(page, "Порт Порт 120", "Зарегистрирован, не отвечает")
    panel.get_by_role("button", name="Позвонить").click()
    expect(outcome).to_contain_text("Завершён после ответа")
    expect(box(page, 1)).to_have_attribute("data-path", "1")
    expect(box(page, 2)).to_have_attribute("data-path", "2")
    expect(page.locator(".react-flow__edge.edge-1-2.edge-taken")).to_have_count(1)
    path = panel.get_by_test_id("path-list")
    expect(path.get_by_role("row")).to_have_count(3)
    expect(path.get_by_role("row").nth(1)).to_contain_text("Нет ответа")
    expect(path.get_by_role("row").nth(1)).to_contain_text("step 1: no answer")
    shot(page, "simulator-no-answer-path")


def _recorded_call(site: Site, number: str, steps: list[int]) -> None:
    """DP-7: a finished call through ``number`` as the engine records it, with its steps."""
    start = now_ms()
    with Session(make_engine(site.database_url)) as s:
        version_id = s.scalar(
            select(DialplanVersion.id)
            .join(Dialplan, Dialplan.id == DialplanVersion.dialplan_id)
            .join(InternalNumber, InternalNumber.id == Dialplan.internal_number_id)
            .where(InternalNumber.client_id == site.client_id, InternalNumber.number == number)
            .order_by(DialplanVersion.number.desc())
            .limit(1)
        )
        s.add(
            Call(
                client_id=site.client_id,
                uuid=f"path-{start}",
                caller="+74950000002",
                called=number,
                caller_rev="2000000594",
                called_rev=number[::-1],
                internal_number=number,
                start_ms=start,
                end_ms=start + 9000,
                duration_ms=9000,
                answer_ms=start + 5000,
                outcome="answered",
                steps=steps,
                dialplan_version_id=version_id,
            )
        )
        s.commit()


def test_a_recorded_calls_path_on_its_dialplan(page: Page, site: Site) -> None:
    """DP-7: Детализация вызовов → the call → "Показать на диалплане" opens its dialplan
    read-only with the steps it went through highlighted in order."""
    login(page, site, "client_admin")
    seed_plan(Api(page, site), "130", "line130")
    _recorded_call(site, "130", [1, 2])
    open_section(page, "Детализация вызовов")
    page.get_by_label("Номер (входящий или исходящий)").fill("+74950000002")
    page.get_by_role("row").filter(has_text="+74950000002").click()
    page.get_by_role("link", name="Показать на диалплане").click()
    expect(page.get_by_role("heading", name="Диалплан номера 130")).to_be_visible()
    expect(page.get_by_text("Шаги вызова: 1 → 2")).to_be_visible()
    expect(box(page, 1)).to_have_attribute("data-path", "1")
    expect(box(page, 2)).to_have_attribute("data-path", "2")
    expect(page.locator(".react-flow__edge.edge-1-2.edge-taken")).to_have_count(1)
    expect(page.get_by_role("button", name="Сохранить")).to_have_count(0)
    shot(page, "cdr-path-on-dialplan")


def test_active_calls_without_an_engine(page: Page, site: Site) -> None:
    """AC-1: the page says honestly that no engine runs here and that there are no calls; with
    no engine the stream ends at once, so the list is checked every 10 s."""
    login(page, site, "client_admin")
    open_section(page, "Активные вызовы")
    expect(page.get_by_test_id("engine-not-running")).to_contain_text(
        "Обработка вызовов не запущена"
    )
    expect(page.get_by_test_id("no-active-calls")).to_be_visible()
    expect(page.get_by_test_id("refresh-mode")).to_contain_text("каждые 10 с")
    shot(page, "active-calls-no-engine")


def test_statistics_say_what_there_is(page: Page, site: Site) -> None:
    """ST-1: charts of the recorded calls; the cost note says no tariff is assigned; a period
    without calls says so instead of drawing anything."""
    login(page, site, "client_admin")
    open_section(page, "Статистика")
    expect(page.get_by_test_id("chart-calls")).to_be_visible()
    expect(page.get_by_test_id("chart-direction-calls")).to_be_visible()
    expect(page.get_by_test_id("cost-note")).to_contain_text("Тариф клиенту не назначен")
    shot(page, "statistics")
    page.get_by_label("С", exact=True).fill("2020-01-01")
    page.get_by_label("По", exact=True).fill("2020-01-31")
    expect(page.get_by_test_id("no-statistics")).to_contain_text("вызовов нет")
    expect(page.get_by_test_id("chart-calls")).to_have_count(0)
    shot(page, "statistics-empty")
