// Provider-side sections (ADM-1, ADM-5, ADM-6): clients with their limits and billing account.
import { createElement } from "react";
import type { Schemas } from "../api/client";
import { defineSection } from "../crud/types";
import { BillingTab } from "./BillingTab";
import { OpenClientButton } from "./OpenClientButton";
import { description, LANGUAGE_OPTIONS, nameLabel } from "./common";

const DIRECTIONS = [
  { value: "local", label: ["Местные", "Local"] },
  { value: "long_distance", label: ["Междугородные (МГ)", "Long distance"] },
  { value: "international", label: ["Международные (МН)", "International"] },
  { value: "toll_free", label: ["Бесплатные (8 800)", "Toll-free"] },
  { value: "emergency", label: ["Экстренные службы", "Emergency"] },
] as const;

export const clients = defineSection<Schemas["ClientCreate"]>({
  key: "clients",
  scope: "global",
  title: "menu.clients",
  policy: "clients",
  sort: "name",
  rowLabel: nameLabel,
  columns: [
    { key: "name", label: "f.name" },
    { key: "description", label: "f.description" },
    { key: "is_active", label: "f.is_active" },
    { key: "open", label: "app.cabinet", render: (row) => createElement(OpenClientButton, { clientId: Number(row.id) }) },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "name", kind: "text", label: "f.name", required: true },
        { name: "timezone", kind: "text", label: ["Часовой пояс", "Time zone"], default: "Europe/Moscow", required: true },
        { name: "area_code", kind: "text", label: ["Код города", "Area code"], placeholder: ["495", "495"], nullable: true },
        { name: "language", kind: "select", label: "f.language", options: LANGUAGE_OPTIONS, default: "ru", required: true },
        { name: "is_active", kind: "switch", label: "f.is_active", default: true },
        description,
      ],
    },
    {
      key: "limits",
      label: "tabs.limits",
      fields: [
        { name: "limits.max_concurrent_calls", kind: "int", label: ["Одновременных вызовов", "Concurrent calls"], min: 0 },
        { name: "limits.max_call_duration_s", kind: "int", label: ["Длительность вызова, с", "Call duration, s"], min: 0, max: 86400 },
        { name: "limits.spend_limit", kind: "money", label: ["Лимит расходов", "Spend limit"] },
        {
          name: "limits.allowed_directions",
          kind: "multiselect",
          label: ["Разрешённые направления", "Allowed directions"],
          options: [...DIRECTIONS],
          default: ["local", "long_distance", "toll_free", "emergency"],
        },
      ],
    },
    { key: "billing", label: ["Биллинговый счёт", "Billing account"], render: BillingTab, policy: "client_billing" },
  ],
});
