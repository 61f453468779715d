// Журнал изменений (ADM-7): who changed what and when, from where, the object before and
// after. Provider staff read the whole installation's log (optionally one client's); a
// client's administrator reads its own client's. Read-only.
import { Alert, Badge, Button, Center, Drawer, Group, Loader, Pagination, Select, Stack, Switch, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { http, type Page, type Query, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { useList } from "../crud/resource";
import { useText } from "../crud/text";
import { can } from "../rights";

type Entry = Schemas["AuditRead"];
type Pair = readonly [string, string];
const PAGE = 50;

const ACTIONS: Record<string, Pair> = {
  create: ["Создание", "Created"],
  update: ["Изменение", "Changed"],
  delete: ["Удаление", "Deleted"],
  payment: ["Платёж", "Payment"],
  read_secret: ["Просмотр пароля", "Secret read"],
  upload_audio: ["Загрузка звука", "Audio uploaded"],
  import: ["Импорт", "Import"],
};

// Audit entities are the API's resource names.
const ENTITIES: Record<string, Pair> = {
  clients: ["Клиент", "Client"],
  "billing-account": ["Биллинговый счёт", "Billing account"],
  operators: ["Оператор", "Operator"],
  tariffs: ["Тариф", "Tariff"],
  "tariff-rates": ["Ставка тарифа", "Tariff rate"],
  "staff-users": ["Пользователь системы", "Staff user"],
  users: ["Пользователь", "User"],
  "internal-numbers": ["Внутренний номер", "Internal number"],
  "external-numbers": ["Внешний номер", "External number"],
  ports: ["Порт", "Port"],
  dialplans: ["Диалплан", "Dialplan"],
  queues: ["Очередь", "Queue"],
  "forwarding-numbers": ["Номер переадресации", "Forwarding number"],
  "voice-menus": ["Голосовое меню", "Voice menu"],
  classifiers: ["Классификатор", "Classifier"],
  contacts: ["Контакт", "Contact"],
  "pickup-groups": ["Группа перехвата", "Pickup group"],
  "media-packs": ["Медиапакет", "Media pack"],
  "media-files": ["Медиафайл", "Media file"],
  "voicemail-boxes": ["Ящик голосовой почты", "Voicemail box"],
  campaigns: ["Кампания телемаркетинга", "Campaign"],
  api_tokens: ["API-токен", "API token"],
};

function headers(global: boolean): Pair[] {
  const client: Pair[] = global ? [["Клиент", "Client"]] : [];
  return [["Когда", "When"], ["Кто", "Who"], ["Действие", "Action"], ["Объект", "Object"], ...client, ["Адрес", "Address"]];
}

function label(map: Record<string, Pair>, key: string, text: (p: Pair) => string): string {
  return map[key] ? text(map[key]) : key;
}

function show(value: unknown): string {
  if (value === undefined) return "—";
  if (value === null) return "null";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Before and after, one row per field; unchanged fields only on request. */
function Changes({ entry }: { entry: Entry }) {
  const text = useText();
  const [all, setAll] = useState(false);
  const before = entry.before ?? {};
  const after = entry.after ?? {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const changed = (k: string) => JSON.stringify(before[k]) !== JSON.stringify(after[k]);
  const shown = keys.filter((k) => all || changed(k) || entry.before === null || entry.after === null);
  return (
    <Stack gap="xs">
      <Switch label={text(["Показать неизменённые поля", "Show unchanged fields"])} checked={all} onChange={(e) => setAll(e.currentTarget.checked)} />
      <Table withTableBorder aria-label={text(["Изменения", "Changes"])}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{text(["Поле", "Field"])}</Table.Th>
            <Table.Th>{text(["Было", "Before"])}</Table.Th>
            <Table.Th>{text(["Стало", "After"])}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {shown.map((k) => (
            <Table.Tr key={k} bg={changed(k) ? "var(--mantine-color-yellow-light)" : undefined}>
              <Table.Td>{k}</Table.Td>
              <Table.Td style={{ wordBreak: "break-all" }}>{entry.before === null ? "—" : show(before[k])}</Table.Td>
              <Table.Td style={{ wordBreak: "break-all" }}>{entry.after === null ? "—" : show(after[k])}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}

interface Filters {
  from: string;
  to: string;
  entity: string | null;
  action: string | null;
  client_id: string | null;
}

function useClientNames(enabled: boolean): Map<number, string> {
  const list = useList("/clients", { limit: 500, sort: "name" }, enabled);
  return new Map((list.data?.items ?? []).map((c) => [Number(c.id), String(c.name)]));
}

export function AuditPage({ clientId }: { clientId: number | null }) {
  const text = useText();
  const { t, i18n } = useTranslation();
  const me = useMe();
  const [filters, setFilters] = useState<Filters>({ from: "", to: "", entity: null, action: null, client_id: null });
  const [debounced] = useDebouncedValue(filters, 300);
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState<Entry | null>(null);
  const global = clientId === null;
  const clients = useClientNames(global && can(me, "clients", "read"));
  const query: Query = { ...debounced, client_id: global ? debounced.client_id : undefined, limit: PAGE, offset: (page - 1) * PAGE };
  const path = global ? "/audit" : `/clients/${clientId}/audit`;
  const list = useQuery({
    queryKey: ["audit", path, query],
    queryFn: ({ signal }) => http<Page<Entry>>("GET", path, { query, signal }),
    placeholderData: (prev) => prev,
  });
  const set = (patch: Partial<Filters>) => {
    setFilters((f) => ({ ...f, ...patch }));
    setPage(1);
  };
  const options = (m: Record<string, Pair>) => Object.entries(m).map(([value, l]) => ({ value, label: text(l) }));
  const items = list.data?.items ?? [];
  const total = list.data?.total ?? 0;
  const when = (ms: number) => new Date(ms).toLocaleString(i18n.language === "en" ? "en-GB" : "ru-RU");
  return (
    <Stack>
      <Title order={2}>{t("menu.audit")}</Title>
      <Group align="end">
        <TextInput type="date" label={text(["С", "From"])} value={filters.from} onChange={(e) => set({ from: e.currentTarget.value })} />
        <TextInput type="date" label={text(["По", "To"])} value={filters.to} onChange={(e) => set({ to: e.currentTarget.value })} />
        <Select label={text(["Объект", "Object"])} clearable searchable w={220} data={options(ENTITIES)} value={filters.entity} onChange={(v) => set({ entity: v })} />
        <Select label={text(["Действие", "Action"])} clearable w={180} data={options(ACTIONS)} value={filters.action} onChange={(v) => set({ action: v })} />
        {global && clients.size > 0 && (
          <Select
            label={t("menu.client")}
            clearable
            searchable
            w={220}
            data={[...clients].map(([id, name]) => ({ value: String(id), label: name }))}
            value={filters.client_id}
            onChange={(v) => set({ client_id: v })}
          />
        )}
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
        <Table.ScrollContainer minWidth={700}>
          <Table highlightOnHover striped aria-label={t("menu.audit")}>
            <Table.Thead>
              <Table.Tr>
                {headers(global).map((h) => (
                  <Table.Th key={h[0]}>{text(h)}</Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((e) => (
                <Table.Tr key={e.id} style={{ cursor: "pointer" }} onClick={() => setOpen(e)}>
                  <Table.Td>{when(e.at_ms)}</Table.Td>
                  <Table.Td>{e.user_login}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={e.action === "delete" ? "red" : e.action === "create" ? "green" : "blue"}>
                      {label(ACTIONS, e.action, text)}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {label(ENTITIES, e.entity, text)} {e.entity_id ? `#${e.entity_id}` : ""}
                  </Table.Td>
                  {global && <Table.Td>{e.client_id === null ? "—" : (clients.get(e.client_id) ?? `#${e.client_id}`)}</Table.Td>}
                  <Table.Td>{e.remote_addr ?? "—"}</Table.Td>
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
      <Drawer opened={open !== null} onClose={() => setOpen(null)} position="right" size="xl" title={text(["Запись журнала", "Log entry"])}>
        {open && (
          <Stack>
            <Text>
              {when(open.at_ms)} · {open.user_login} · {label(ACTIONS, open.action, text)} · {label(ENTITIES, open.entity, text)} {open.entity_id ? `#${open.entity_id}` : ""}
            </Text>
            <Changes entry={open} />
            <Group>
              <Button variant="default" onClick={() => setOpen(null)}>
                {t("actions.close")}
              </Button>
            </Group>
          </Stack>
        )}
      </Drawer>
    </Stack>
  );
}
