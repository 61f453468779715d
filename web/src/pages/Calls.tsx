// Детализация вызовов (CDR-1, CDR-2): period filter, search by caller, called and internal
// number, row details with legs, steps and events, recordings played in the browser, faxes
// downloaded, CSV export. Read-only: nothing can be broken from here.
import { Alert, Anchor, Badge, Button, Center, Drawer, Group, Loader, Pagination, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { Link } from "react-router-dom";
import { http, withQuery, type Query, type Schemas } from "../api/client";
import { useText } from "../crud/text";

type Call = Schemas["CallRead"];
type Detail = Schemas["CallDetail"];
const PAGE = 50;

const OUTCOMES: Record<string, readonly [string, string]> = {
  answered: ["Отвечен", "Answered"],
  no_answer: ["Нет ответа", "No answer"],
  busy: ["Занято", "Busy"],
  no_route: ["Нет маршрута", "No route"],
  cancelled: ["Отменён", "Cancelled"],
  loop: ["Зацикливание", "Loop"],
  failed: ["Ошибка", "Failed"],
};

const DIRECTIONS: Record<string, readonly [string, string]> = {
  incoming: ["Входящий", "Incoming"],
  internal: ["Внутренний", "Internal"],
  local: ["Местный", "Local"],
  long_distance: ["МГ", "Long distance"],
  international: ["МН", "International"],
  toll_free: ["8 800", "Toll-free"],
  emergency: ["Экстренный", "Emergency"],
};

const LEG_DIRECTIONS: Record<string, readonly [string, string]> = {
  in: ["Входящее плечо", "Inbound leg"],
  out: ["Исходящее плечо", "Outbound leg"],
};

// The engine's call events (engine/b2bua.py), in the seed's words where it has them.
const EVENTS: Record<string, readonly [string, string]> = {
  step: ["Шаг диалплана", "Dialplan step"],
  move: ["Переход по условию", "Condition taken"],
  answered: ["Ответ", "Answered"],
  no_answer: ["Нет ответа", "No answer"],
  no_route: ["Нет маршрута", "No route"],
  no_dialplan: ["Нет диалплана", "No dialplan"],
  hangup: ["Отбой", "Hang-up"],
  hold: ["Удержание", "Hold"],
  unhold: ["Снято с удержания", "Resumed"],
  recording: ["Запись", "Recording"],
  play: ["Звуковое сообщение", "Sound message"],
  menu: ["Голосовое меню", "Voice menu"],
  menu_choice: ["Выбор в меню", "Menu choice"],
  menu_failed: ["Меню: нет выбора", "Menu: no choice"],
  menu_replay: ["Меню: повтор", "Menu replayed"],
  classifier: ["Классификатор", "Classifier"],
  goto_number: ["Переход на внутренний номер", "Go to internal number"],
  pickup: ["Перехват", "Pickup"],
  voicemail: ["Голосовая почта", "Voicemail"],
  voicemail_end: ["Голосовая почта: конец", "Voicemail ended"],
  voicemail_empty: ["Голосовая почта: пустое сообщение", "Voicemail: empty"],
  voicemail_mail: ["Голосовая почта: письмо", "Voicemail mailed"],
  fax: ["Факс", "Fax"],
  fax_result: ["Факс: результат", "Fax result"],
  limit: ["Ограничение", "Limit reached"],
  no_media: ["Нет звука", "No media"],
  rtp_timeout: ["Пропал звук (RTP)", "RTP timeout"],
  not_implemented: ["Не реализовано", "Not implemented"],
};

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function localTime(ms: number | null | undefined, lng: string): string {
  return ms === null || ms === undefined ? "—" : new Date(ms).toLocaleString(lng === "en" ? "en-GB" : "ru-RU");
}

function today(offsetDays = 0): string {
  const d = new Date(Date.now() + offsetDays * 86_400_000);
  return d.toISOString().slice(0, 10);
}

interface Filters {
  from: string;
  to: string;
  number: string;
  internal_number: string;
  outcome: string | null;
  direction: string | null;
}

function CallDetails({ clientId, id, onClose }: { clientId: number; id: number | null; onClose: () => void }) {
  const text = useText();
  const { i18n } = useTranslation();
  const detail = useQuery({
    queryKey: ["calls", clientId, id],
    queryFn: () => http<Detail>("GET", `/clients/${clientId}/calls/${id}`),
    enabled: id !== null,
  });
  const d = detail.data;
  return (
    <Drawer opened={id !== null} onClose={onClose} position="right" size="xl" title={text(["Вызов", "Call"])}>
      {detail.isPending && <Loader />}
      {detail.error && <Alert color="red">{detail.error.message}</Alert>}
      {d && (
        <Stack>
          <Text>
            {d.caller} → {d.called} · {localTime(d.start_ms, i18n.language)} · {duration(d.duration_ms)} ·{" "}
            {text(OUTCOMES[d.outcome ?? ""] ?? [d.outcome ?? "—", d.outcome ?? "—"])}
          </Text>
          <Group gap="sm">
            <Text size="sm">
              {text(["Шаги диалплана", "Dialplan steps"])}: {d.steps.length ? d.steps.join(" → ") : "—"}
            </Text>
            {d.steps.length > 0 && (
              <Button size="compact-sm" variant="light" component={Link} to={`/clients/${clientId}/calls/${d.id}/dialplan`}>
                {text(["Показать на диалплане", "Show on the dialplan"])}
              </Button>
            )}
          </Group>
          <Title order={5}>{text(["Плечи вызова", "Legs"])}</Title>
          <Table withTableBorder>
            <Table.Tbody>
              {d.legs.map((leg) => (
                <Table.Tr key={leg.id}>
                  <Table.Td>{text(LEG_DIRECTIONS[leg.direction] ?? [leg.direction, leg.direction])}</Table.Td>
                  <Table.Td>{leg.party}</Table.Td>
                  <Table.Td>{localTime(leg.start_ms, i18n.language)}</Table.Td>
                  <Table.Td>{leg.outcome ? text(OUTCOMES[leg.outcome] ?? [leg.outcome, leg.outcome]) : "—"}</Table.Td>
                  <Table.Td>{leg.codec ?? ""}</Table.Td>
                  <Table.Td>{leg.cost}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {d.recordings.length > 0 && <Title order={5}>{text(["Записи", "Recordings"])}</Title>}
          {d.recordings.map((r) => (
            <Group key={r.id}>
              <audio controls preload="none" src={r.url ?? undefined} aria-label={`${text(["Запись", "Recording"])} ${r.id}`} />
              <Anchor href={r.url ?? undefined} download>
                {text(["Скачать", "Download"])}
              </Anchor>
            </Group>
          ))}
          {d.faxes.length > 0 && <Title order={5}>{text(["Факсы", "Faxes"])}</Title>}
          {d.faxes.map((f) => (
            <Group key={f.id}>
              <Badge>{f.status}</Badge>
              <Text size="sm">{f.pages ?? 0} {text(["стр.", "pages"])}</Text>
              {f.has_pdf && f.url && <Anchor href={f.url}>PDF</Anchor>}
            </Group>
          ))}
          <Title order={5}>{text(["События", "Events"])}</Title>
          <Table withTableBorder>
            <Table.Tbody>
              {d.events.map((e) => (
                <Table.Tr key={e.id}>
                  <Table.Td>{localTime(e.at_ms, i18n.language)}</Table.Td>
                  <Table.Td>{text(EVENTS[e.kind] ?? [e.kind, e.kind])}</Table.Td>
                  <Table.Td>{e.step_level ?? ""}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Stack>
      )}
    </Drawer>
  );
}

export function CallsPage({ clientId }: { clientId: number }) {
  const text = useText();
  const { t, i18n } = useTranslation();
  const [filters, setFilters] = useState<Filters>({ from: today(-30), to: today(), number: "", internal_number: "", outcome: null, direction: null });
  const [debounced] = useDebouncedValue(filters, 300);
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState<number | null>(null);
  const query: Query = { ...debounced, limit: PAGE, offset: (page - 1) * PAGE };
  const list = useQuery({
    queryKey: ["calls", clientId, query],
    queryFn: ({ signal }) => http<Schemas["CallPage"]>("GET", `/clients/${clientId}/calls`, { query, signal }),
    placeholderData: (prev) => prev,
  });
  const set = (patch: Partial<Filters>) => {
    setFilters((f) => ({ ...f, ...patch }));
    setPage(1);
  };
  const options = (m: Record<string, readonly [string, string]>) => Object.entries(m).map(([value, label]) => ({ value, label: text(label) }));
  const items: Call[] = list.data?.items ?? [];
  const total = list.data?.total ?? 0;
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("menu.cdr")}</Title>
        <Group gap="xs">
          <Button component="a" variant="light" href={withQuery(`/api/v1/clients/${clientId}/calls/export.csv`, { ...debounced })}>
            CSV
          </Button>
          <Button component="a" variant="light" href={withQuery(`/api/v1/clients/${clientId}/calls/export.xlsx`, { ...debounced })}>
            XLSX
          </Button>
        </Group>
      </Group>
      <Group align="end">
        <TextInput type="date" label={text(["С", "From"])} value={filters.from} onChange={(e) => set({ from: e.currentTarget.value })} />
        <TextInput type="date" label={text(["По", "To"])} value={filters.to} onChange={(e) => set({ to: e.currentTarget.value })} />
        <TextInput label={text(["Номер (входящий или исходящий)", "Number (caller or called)"])} value={filters.number} onChange={(e) => set({ number: e.currentTarget.value })} />
        <TextInput label={text(["Внутренний номер", "Internal number"])} w={140} value={filters.internal_number} onChange={(e) => set({ internal_number: e.currentTarget.value })} />
        <Select label={text(["Результат", "Outcome"])} clearable w={160} data={options(OUTCOMES)} value={filters.outcome} onChange={(v) => set({ outcome: v })} />
        <Select label={text(["Направление", "Direction"])} clearable w={160} data={options(DIRECTIONS)} value={filters.direction} onChange={(v) => set({ direction: v })} />
      </Group>
      {list.error && <Alert color="red">{list.error.message}</Alert>}
      {list.isPending ? (
        <Center p="xl">
          <Loader aria-label={t("common.loading")} />
        </Center>
      ) : items.length === 0 ? (
        <Text c="dimmed" ta="center" p="xl">
          {t("common.nothingFound")}
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={800}>
          <Table highlightOnHover striped aria-label={t("menu.cdr")}>
            <Table.Thead>
              <Table.Tr>
                {[["Начало", "Start"], ["Кто звонил", "Caller"], ["Куда", "Called"], ["Внутренний", "Internal"], ["Направление", "Direction"], ["Результат", "Outcome"], ["Длительность", "Duration"], ["Стоимость", "Cost"]].map((h) => (
                  <Table.Th key={h[0]}>{text(h as [string, string])}</Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((c) => (
                <Table.Tr key={c.id} style={{ cursor: "pointer" }} onClick={() => setOpen(c.id)}>
                  <Table.Td>{localTime(c.start_ms, i18n.language)}</Table.Td>
                  <Table.Td>{c.caller}</Table.Td>
                  <Table.Td>{c.called}</Table.Td>
                  <Table.Td>{c.internal_number ?? "—"}</Table.Td>
                  <Table.Td>{text(DIRECTIONS[c.direction] ?? [c.direction, c.direction])}</Table.Td>
                  <Table.Td>{c.outcome ? text(OUTCOMES[c.outcome] ?? [c.outcome, c.outcome]) : "—"}</Table.Td>
                  <Table.Td>{duration(c.duration_ms)}</Table.Td>
                  <Table.Td>
                    {c.cost} {c.currency}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          {t("common.total", { count: total })}
        </Text>
        {total > PAGE && <Pagination total={Math.ceil(total / PAGE)} value={page} onChange={setPage} />}
      </Group>
      <CallDetails clientId={clientId} id={open} onClose={() => setOpen(null)} />
    </Stack>
  );
}
