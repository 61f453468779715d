// CRM webhooks (PRODUCT.md §6 "CRM телефония", docs/webhooks.md): where a client's call events
// are POSTed. The secret is write-only (the API never returns it): empty on edit keeps it.
import type { Schemas } from "../api/client";
import { defineSection, type Row } from "../crud/types";
import { description } from "./common";
import { WebhookTest } from "./WebhookTest";

const EVENTS = [
  { value: "started", label: ["started — начало вызова", "started — a call begins"] },
  { value: "answered", label: ["answered — ответ", "answered — answered"] },
  { value: "held", label: ["held — удержание", "held — put on hold"] },
  { value: "resumed", label: ["resumed — снятие с удержания", "resumed — taken off hold"] },
  { value: "updated", label: ["updated — изменение вызова", "updated — the call changed"] },
  { value: "ended", label: ["ended — завершение", "ended — the call ended"] },
] as const;

function events(row: Row, t: (text: readonly [string, string]) => string): string {
  const list = (row.events as string[] | undefined) ?? [];
  return list.length ? list.join(", ") : t(["все", "all"]);
}

export const webhooks = defineSection<Schemas["WebhookCreate"]>({
  key: "webhooks",
  scope: "client",
  title: "menu.webhooks",
  policy: "client_config",
  sort: "url",
  rowLabel: (row) => String(row.url ?? row.id ?? ""),
  columns: [
    { key: "url", label: ["Адрес (URL)", "URL"] },
    { key: "events", label: ["События", "Events"], render: (row, { t }) => events(row, t) },
    { key: "is_active", label: "f.is_active" },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "url", kind: "text", label: ["Адрес (URL)", "URL"], required: true, placeholder: ["https://crm.example.com/pbx/events", "https://crm.example.com/pbx/events"] },
        {
          name: "secret",
          kind: "password",
          label: ["Секрет подписи", "Signing secret"],
          required: true,
          writeOnly: true,
          help: ["16–200 символов; ключ HMAC-SHA256 подписи, не показывается", "16–200 characters; the HMAC-SHA256 signing key, never shown"],
        },
        {
          name: "events",
          kind: "multiselect",
          label: ["События", "Events"],
          options: [...EVENTS],
          help: ["Пусто — все события", "Empty: every event"],
        },
        { name: "is_active", kind: "switch", label: "f.is_active", default: true },
        description,
      ],
    },
  ],
  extra: WebhookTest,
});
