// Contacts of a classifier (CLS-1), edited in the classifier's Контакты tab.
import type { Schemas } from "../api/client";
import { defineSection, type Row } from "../crud/types";
import { description } from "./common";

/** Contacts are edited inside their classifier (the seed's Контакты tab), not from the menu. */
export const contacts = defineSection<Schemas["ContactCreate"]>({
  key: "contacts",
  scope: "client",
  title: "tabs.contacts",
  policy: "client_config",
  sort: "name",
  rowLabel: (row: Row) => String(row.name || row.clip),
  columns: [
    { key: "name", label: ["Наименование", "Name"] },
    { key: "clip", label: ["CLIP", "CLIP"] },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "name", kind: "text", label: ["Наименование", "Name"] },
        { name: "clip", kind: "text", label: ["CLIP", "CLIP"], required: true, help: ["В международном формате: +7…", "International format: +7…"] },
        description,
      ],
    },
  ],
});
