// Компоненты диалплана (PRODUCT.md §4): the seed's sections with its tabs and words.
import type { Schemas } from "../api/client";
import { defineSection, type Row } from "../crud/types";
import { ContactsTab } from "./ContactsTab";
import { CampaignControls, MediaAudioTab } from "./extras";
import { description, language, limitsFields, name, nameLabel, refs, servicesTab } from "./common";

const generalLimits = { key: "limits", label: "tabs.limits" } as const;

export const forwardingNumbers = defineSection<Schemas["ForwardingNumberCreate"]>({
  key: "forwarding-numbers",
  scope: "client",
  title: "menu.forwardingNumbers",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "number", label: "f.number" },
    { key: "name", label: "f.name" },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "number", kind: "text", label: "f.number", required: true, placeholder: ["89161234567", "89161234567"] },
        name,
        language,
        description,
      ],
    },
    servicesTab(),
    { ...generalLimits, fields: limitsFields() },
  ],
});

const STRATEGIES = [
  { value: "ringall", label: ["ringall — все доступные одновременно", "ringall — every free agent at once"] },
  { value: "leastrecent", label: ["leastrecent — кто дольше не вызывался", "leastrecent — least recently called"] },
  { value: "fewestcalls", label: ["fewestcalls — кто обработал меньше вызовов", "fewestcalls — fewest calls handled"] },
  { value: "random", label: ["random — случайный свободный", "random — a random free agent"] },
  { value: "rrmemory", label: ["rrmemory — по кругу с памятью", "rrmemory — round robin with memory"] },
] as const;

export const queues = defineSection<Schemas["QueueCreate"]>({
  key: "queues",
  scope: "client",
  title: "menu.queues",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "strategy", label: ["Стратегия", "Strategy"] },
    { key: "agents", label: "tabs.agents" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "strategy", kind: "select", label: ["Стратегия", "Strategy"], options: [...STRATEGIES], default: "ringall", required: true },
        { name: "pickup_group_id", kind: "ref", label: "f.pickup_group_id", ref: refs.pickupGroup },
        { name: "music_pack_id", kind: "ref", label: ["Музыка на удержании (медиапакет)", "Music on hold (media pack)"], ref: refs.mediaPack },
        { name: "max_callers", kind: "int", label: ["Мест в очереди", "Callers waiting at most"], min: 0 },
        { name: "agent_ring_s", kind: "int", label: ["Вызов агента, с", "Agent rings, s"], default: 20, min: 1, max: 600 },
        language,
        description,
      ],
    },
    {
      key: "agents",
      label: "tabs.agents",
      fields: [
        {
          name: "agents",
          kind: "rows",
          label: "tabs.agents",
          newRow: { port_id: null, forwarding_number_id: null, penalty: 0, logged_in: true },
          columns: [
            { name: "port_id", kind: "ref", label: "menu.ports", ref: refs.port },
            { name: "forwarding_number_id", kind: "ref", label: "menu.forwardingNumbers", ref: refs.forwardingNumber },
            { name: "penalty", kind: "int", label: ["Приоритет (штраф)", "Penalty"], min: 0, max: 1000 },
            { name: "logged_in", kind: "switch", label: ["В очереди", "Logged in"] },
          ],
        },
      ],
    },
    servicesTab(),
  ],
});

const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"].map((k) => ({ value: k, label: [k, k] as const }));

export const voiceMenus = defineSection<Schemas["VoiceMenuCreate"]>({
  key: "voice-menus",
  scope: "client",
  title: "menu.voiceMenus",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "description", label: "f.description" },
    { key: "keys", label: "tabs.menu" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "digit_timeout_s", kind: "int", label: ["Время ожидания, с", "Digit timeout, s"], default: 3, min: 1, max: 30 },
        { name: "extension_dialling", kind: "switch", label: ["Внутренние номера (донабор)", "Extension dialling"] },
        { name: "announcement_id", kind: "ref", label: ["Анонс", "Announcement"], ref: refs.mediaFile },
        language,
        description,
      ],
    },
    servicesTab(),
    {
      key: "menu",
      label: "tabs.menu",
      fields: [
        {
          name: "keys",
          kind: "rows",
          label: ["Клавиша → внутренний номер", "Key → internal number"],
          newRow: { key: null, internal_number_id: null },
          columns: [
            { name: "key", kind: "select", label: ["Клавиша", "Key"], options: KEYS },
            { name: "internal_number_id", kind: "ref", label: "menu.internalNumbers", ref: refs.internalNumber },
          ],
        },
      ],
    },
    { ...generalLimits, fields: limitsFields() },
  ],
});

export const classifiers = defineSection<Schemas["ClassifierCreate"]>({
  key: "classifiers",
  scope: "client",
  title: "menu.classifiers",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    { key: "general", label: "tabs.general", fields: [name, description] },
    { key: "contacts", label: "tabs.contacts", render: ContactsTab },
  ],
});

export const mediaPacks = defineSection<Schemas["MediaPackCreate"]>({
  key: "media-packs",
  scope: "client",
  title: "menu.mediaPacks",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name", render: (row) => `${row.is_default ? "* " : ""}${row.name}` },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "is_default", kind: "switch", label: ["По умолчанию (музыка на удержании, замена гудков)", "Default (music on hold, ringback replacement)"] },
        description,
      ],
    },
  ],
});

function duration(row: Row): string {
  const ms = row.duration_ms as number | null;
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export const mediaFiles = defineSection<Schemas["MediaFileCreate"]>({
  key: "media-files",
  scope: "client",
  title: "menu.mediaFiles",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "language", label: "f.language" },
    { key: "duration_ms", label: ["Длительность", "Duration"], render: duration },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "pack_id", kind: "ref", label: "menu.mediaPacks", ref: refs.mediaPack, required: true },
        name,
        language,
        description,
      ],
    },
    { key: "audio", label: "tabs.audio", render: MediaAudioTab },
  ],
});

export const voicemailBoxes = defineSection<Schemas["VoicemailBoxCreate"]>({
  key: "voicemail-boxes",
  scope: "client",
  title: "menu.voicemailBoxes",
  policy: "client_config",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "email", label: ["E-mail", "E-mail"] },
    { key: "max_message_s", label: ["Сообщение до, с", "Message up to, s"] },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        { name: "email", kind: "text", label: ["E-mail для сообщений", "E-mail for messages"] },
        { name: "greeting_id", kind: "ref", label: ["Приветствие", "Greeting"], ref: refs.mediaFile },
        { name: "max_message_s", kind: "int", label: ["Длительность сообщения, с", "Message length, s"], default: 120, min: 5, max: 3600 },
        { name: "attach_audio", kind: "switch", label: ["Прикладывать запись к письму", "Attach the recording"], default: true },
        language,
        description,
      ],
    },
  ],
});

const STATUS: Record<string, readonly [string, string]> = {
  blocked: ["Заблокирована", "Blocked"],
  active: ["Активна", "Active"],
  finished: ["Завершена", "Finished"],
};

export const campaigns = defineSection<Schemas["CampaignCreate"]>({
  key: "campaigns",
  scope: "client",
  title: "menu.campaigns",
  policy: "campaigns",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "status", label: ["Статус", "Status"], render: (row, { t }) => t(STATUS[String(row.status)] ?? String(row.status)) },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        name,
        description,
        { name: "processing_number_id", kind: "ref", label: ["Номер обработки", "Processing number"], ref: refs.internalNumber },
        { name: "max_concurrent", kind: "int", label: ["Одновременных вызовов", "Concurrent calls"], default: 1, min: 1, max: 100 },
        { name: "max_attempts", kind: "int", label: ["Попыток на контакт", "Attempts per contact"], default: 3, min: 1, max: 10 },
        { name: "retry_interval_s", kind: "int", label: ["Интервал повтора, с", "Retry interval, s"], default: 600, min: 0, max: 86400 },
        { name: "ring_timeout_s", kind: "int", label: ["Время вызова, с", "Ring time, s"], default: 30, min: 5, max: 300 },
      ],
    },
    {
      key: "classifiers",
      label: "tabs.classifiers",
      fields: [{ name: "classifier_ids", kind: "multiref", label: "menu.classifiers", ref: refs.classifier }],
    },
  ],
  extra: CampaignControls,
});

