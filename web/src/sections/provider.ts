// The system administrator's own objects (ADM-1, ADM-6, TRK-1): operators (SIP trunks) with
// their number rewrite rules, tariffs with their rates per direction, the provider's staff.
import type { Schemas } from "../api/client";
import { childListTab } from "../crud/ChildList";
import { defineSection, type Option, type Row } from "../crud/types";
import { description, name, nameLabel, refs } from "./common";
import { accountSection } from "./users";

const TRANSPORTS: Option[] = [
  { value: "udp", label: ["UDP", "UDP"] },
  { value: "tcp", label: ["TCP", "TCP"] },
  { value: "tls", label: ["TLS", "TLS"] },
];

// TRK-1: where the number a carrier's call was dialled to is read from.
const DID_SOURCES: Option[] = [
  { value: "request_uri", label: ["Request-URI", "Request-URI"] },
  { value: "to", label: ["Заголовок To", "To header"] },
  { value: "diversion", label: ["Заголовок Diversion", "Diversion header"] },
];

const RULE_DIRECTIONS: Option[] = [
  { value: "inbound", label: ["Входящие", "Inbound"] },
  { value: "outbound", label: ["Исходящие", "Outbound"] },
];

const RULE_FIELDS: Option[] = [
  { value: "caller", label: ["Номер звонящего (A)", "Caller (A)"] },
  { value: "called", label: ["Набранный номер (B)", "Called (B)"] },
];

export const operators = defineSection<Schemas["OperatorCreate"]>({
  key: "operators",
  scope: "global",
  title: "menu.operators",
  policy: "system",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "host", label: ["Адрес", "Host"], render: (row) => `${row.host}:${row.port} (${String(row.transport).toUpperCase()})` },
    { key: "register", label: ["Регистрация", "Registers"] },
    { key: "rewrite_rules", label: ["Правил преобразования", "Rewrite rules"] },
    { key: "is_active", label: "f.is_active" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "host", kind: "text", label: ["Адрес (хост или IP)", "Host or IP"], required: true, placeholder: ["sip.operator.ru", "sip.carrier.example"] },
        { name: "port", kind: "int", label: ["Порт SIP", "SIP port"], default: 5060, min: 1, max: 65535, required: true },
        { name: "transport", kind: "select", label: ["Транспорт", "Transport"], options: TRANSPORTS, default: "udp", required: true },
        { name: "tariff_id", kind: "ref", label: "menu.tariffs", ref: refs.tariff },
        { name: "max_channels", kind: "int", label: ["Каналов не больше", "Max channels"], min: 0, max: 100000 },
        { name: "did_source", kind: "select", label: ["Набранный номер из", "Dialled number from"], options: DID_SOURCES, default: "request_uri", required: true },
        { name: "is_active", kind: "switch", label: "f.is_active", default: true },
        description,
      ],
    },
    {
      key: "auth",
      label: ["Аутентификация", "Authentication"],
      fields: [
        { name: "register", kind: "switch", label: ["Регистрироваться у оператора", "Register with the carrier"], help: ["Иначе оператор опознаётся по адресу", "Otherwise the carrier is known by address"] },
        { name: "username", kind: "text", label: ["Имя пользователя", "Username"], nullable: true },
        { name: "secret", kind: "password", label: "login.password", writeOnly: true },
        { name: "allowed_addresses", kind: "tags", label: ["Адреса оператора (IP или сети)", "Carrier addresses (IPs or networks)"], placeholder: ["198.51.100.0/24", "198.51.100.0/24"] },
      ],
    },
    {
      key: "rewrite",
      label: ["Преобразование номеров", "Number rewriting"],
      fields: [
        {
          name: "rewrite_rules",
          kind: "rows",
          label: ["Правила (по порядку): шаблон — регулярное выражение, замена — \\1, \\2 …", "Rules, in order: pattern is a regular expression, replacement uses \\1, \\2 …"],
          newRow: { direction: "inbound", field: "called", match: "", replace: "" },
          columns: [
            { name: "direction", kind: "select", label: ["Направление", "Direction"], options: RULE_DIRECTIONS, required: true },
            { name: "field", kind: "select", label: ["Номер", "Number"], options: RULE_FIELDS, required: true },
            { name: "match", kind: "text", label: ["Шаблон", "Pattern"], placeholder: ["^8(\\d{10})$", "^8(\\d{10})$"] },
            { name: "replace", kind: "text", label: ["Замена", "Replacement"], placeholder: ["+7\\1", "+7\\1"] },
          ],
        },
      ],
    },
  ],
});

export const tariffRates = defineSection<Schemas["TariffRateCreate"]>({
  key: "tariff-rates",
  scope: "global",
  title: ["Ставки", "Rates"],
  policy: "tariffs",
  sort: "prefix",
  rowLabel: (row: Row) => String(row.prefix),
  columns: [
    { key: "prefix", label: ["Префикс", "Prefix"] },
    { key: "description", label: ["Направление", "Direction"] },
    { key: "price_per_minute", label: ["Цена минуты", "Price per minute"] },
    { key: "connection_fee", label: ["За соединение", "Connection fee"] },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "prefix", kind: "text", label: ["Префикс", "Prefix"], required: true, help: ["Начало номера E.164 без «+»: 7495, 7", "Start of the E.164 number without +: 7495, 7"] },
        { name: "description", kind: "text", label: ["Направление", "Direction"], placeholder: ["Москва", "Moscow"] },
        { name: "price_per_minute", kind: "money", label: ["Цена минуты", "Price per minute"], required: true, placeholder: ["1.50", "1.50"] },
        { name: "connection_fee", kind: "money", label: ["Плата за соединение", "Connection fee"], default: "0" },
      ],
    },
  ],
});

export const tariffs = defineSection<Schemas["TariffCreate"]>({
  key: "tariffs",
  scope: "global",
  title: "menu.tariffs",
  policy: "tariffs",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "currency", label: ["Валюта", "Currency"] },
    { key: "increments", label: ["Тарификация, с", "Billing blocks, s"], render: (row) => `${row.first_increment_s}/${row.increment_s}` },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "currency", kind: "text", label: ["Валюта", "Currency"], default: "RUB", required: true },
        { name: "first_increment_s", kind: "int", label: ["Первый блок, с", "First block, s"], default: 60, min: 1, max: 3600, required: true },
        { name: "increment_s", kind: "int", label: ["Следующие блоки, с", "Next blocks, s"], default: 60, min: 1, max: 3600, required: true, help: ["60/60 — поминутно, 1/1 — посекундно", "60/60 bills minutes, 1/1 seconds"] },
        description,
      ],
    },
    { key: "rates", label: ["Ставки", "Rates"], render: childListTab(tariffRates, "tariff_id") },
  ],
});

// The rights provider staff may hold (api/routes/system.py STAFF_RULES: no users.* or own.*),
// with the seed's titles (cloudpbx/rights.py DESCRIPTIONS).
const STAFF_RIGHTS: Option[] = [
  { value: "system.manage", label: ["Управление системой", "System management"] },
  { value: "https.login", label: ["Вход по HTTPS", "HTTPS login"] },
  { value: "clients.view_settings", label: ["Просмотр настроек клиентов", "View client settings"] },
  { value: "clients.view_cdr", label: ["Просмотр детализации клиентов", "View client CDR"] },
  { value: "clients.manage_calls", label: ["Управление вызовами клиентов", "Manage client calls"] },
  { value: "clients.edit", label: ["Редактирование клиентов", "Edit clients"] },
  { value: "clients.add", label: ["Добавление клиентов", "Add clients"] },
  { value: "clients.delete", label: ["Удаление клиентов", "Delete clients"] },
  { value: "extra.pin_auth", label: ["PIN авторизация", "PIN authorization"] },
  { value: "extra.clip_auth", label: ["CLIP авторизация", "CLIP authorization"] },
  { value: "extra.web_services", label: ["Веб-сервисы", "Web services"] },
  { value: "extra.advanced_settings", label: ["Расширенные настройки", "Advanced settings"] },
  { value: "extra.telemarketing", label: ["Телемаркетинг", "Telemarketing"] },
];

const STAFF_LEVELS: Option[] = [
  { value: "system_admin", label: "levels.system_admin" },
  { value: "clients_admin", label: "levels.clients_admin" },
];

export const staffUsers = accountSection({
  key: "staff-users",
  scope: "global",
  title: "menu.staffUsers",
  policy: "system",
  levels: STAFF_LEVELS,
  defaultLevel: "clients_admin",
  rights: STAFF_RIGHTS,
});
