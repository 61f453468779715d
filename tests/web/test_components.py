"""Dialplan components and call detail in a real browser (issue 6 §3, §5): a queue with an
agent (Q-1), a classifier with a contact (CLS-1), a media file uploaded with progress and
played (MED-1), and the call detail with its recording (CDR-1, CDR-2)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Site, shot, wav_bytes
from .test_cabinets import login, open_section, start_create


def pick(page: Page, label: str, option: str, *, nth: int = 0) -> None:
    """Choose `option` in the Mantine select labelled `label`."""
    page.get_by_label(label).nth(nth).click()
    page.get_by_role("option", name=option).click()


def test_queue_with_an_agent(page: Page, site: Site) -> None:
    """Q-1: Сервисы → Очереди обработки вызовов → Создать; agents on the Агенты tab."""
    login(page, site, "client_admin")
    open_section(page, "Очереди обработки вызовов")
    start_create(page, "Очереди обработки вызовов")
    page.get_by_label("Название").fill("Продажи")
    page.get_by_role("tab", name="Агенты").click()
    page.get_by_role("button", name="Добавить").click()
    pick(page, "Порты", "Линия 2")
    shot(page, "queue-agents")
    page.get_by_role("button", name="Сохранить").click()
    row = page.get_by_role("row").filter(has_text="Продажи")
    expect(row).to_contain_text("ringall")
    expect(row.get_by_role("cell").nth(2)).to_have_text("1")


def test_classifier_with_a_contact(page: Page, site: Site) -> None:
    """CLS-1: a classifier, then on its Контакты tab a contact with a CLIP in E.164."""
    login(page, site, "client_admin")
    open_section(page, "Классификаторы")
    start_create(page, "Классификаторы")
    page.get_by_label("Название").fill("VIP")
    page.get_by_role("button", name="Сохранить").click()
    page.get_by_role("tab", name="Контакты").click()
    page.get_by_role("tabpanel").get_by_role("button", name="Создать").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Наименование").fill("Иванов")
    dialog.get_by_label("CLIP").fill("8 916 111-22-33")
    dialog.get_by_role("button", name="Сохранить").click()
    expect(page.get_by_role("cell", name="+79161112233")).to_be_visible()
    shot(page, "classifier-contacts")


def test_media_file_upload_and_play(page: Page, site: Site, tmp_path: Path) -> None:
    """MED-1: Медиафайлы → Создать in the default pack, upload a WAV, play it."""
    login(page, site, "client_admin")
    open_section(page, "Медиафайлы")
    start_create(page, "Медиафайлы")
    pick(page, "Медиапакеты", "* По умолчанию")
    page.get_by_label("Название").fill("Приветствие")
    page.get_by_role("button", name="Сохранить").click()
    page.get_by_role("tab", name="Звук").click()
    expect(page.get_by_text("Звук ещё не загружен")).to_be_visible()
    sound = tmp_path / "greeting.wav"
    sound.write_bytes(wav_bytes(1.0))
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Загрузка файла").click()
    chooser.value.set_files(str(sound))
    audio = page.locator("audio")
    expect(audio).to_have_count(1)
    src = audio.get_attribute("src")
    assert src is not None
    response = page.request.get(site.url + src)
    assert response.status == 200
    assert response.body()[:4] == b"RIFF"
    shot(page, "media-file-audio")


def test_call_detail_with_recording(page: Page, site: Site) -> None:
    """CDR-1/CDR-2: a client user finds its call by number and opens the recording."""
    login(page, site, "client_user")
    open_section(page, "Детализация вызовов")
    page.get_by_label("Номер (входящий или исходящий)").fill("+74950000001")
    row = page.get_by_role("row").filter(has_text="+74950000001")
    expect(row).to_contain_text("Отвечен")
    row.click()
    drawer = page.get_by_role("dialog")
    expect(drawer).to_contain_text("1 → 2")
    audio = drawer.locator("audio")
    expect(audio).to_have_count(1)
    response = page.request.get(site.url + str(audio.get_attribute("src")))
    assert response.status == 200
    shot(page, "call-detail")
