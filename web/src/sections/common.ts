// Fields many sections share, in the seed's words.
import type { Schemas } from "../api/client";
import type { FieldDef, Option, Row, TabDef } from "../crud/types";

export const LANGUAGE_OPTIONS: Option[] = [
  { value: "ru", label: "langs.ru" },
  { value: "en", label: "langs.en" },
];

export const name = { name: "name", kind: "text", label: "f.name", required: true } as const;
export const description = { name: "description", kind: "textarea", label: "f.description" } as const;
export const language = {
  name: "language",
  kind: "select",
  label: "f.language",
  options: LANGUAGE_OPTIONS,
  default: "ru",
  required: true,
} as const;

export const numberLabel = (row: Row) => String(row.number ?? "");
export const nameLabel = (row: Row) => String(row.name ?? row.id ?? "");
export const numberAndName = (row: Row) => (row.name ? `${row.number} — ${row.name}` : String(row.number));

export const refs = {
  internalNumber: { resource: "internal-numbers", label: numberAndName },
  externalNumber: { resource: "external-numbers", label: numberLabel },
  pickupGroup: { resource: "pickup-groups", label: (r: Row) => (r.description ? `${r.number} — ${r.description}` : String(r.number)) },
  port: { resource: "ports", label: nameLabel },
  forwardingNumber: { resource: "forwarding-numbers", label: (r: Row) => `${r.name} (${r.number})` },
  mediaFile: { resource: "media-files", label: nameLabel },
  mediaPack: { resource: "media-packs", label: (r: Row) => `${r.is_default ? "* " : ""}${r.name}` },
  classifier: { resource: "classifiers", label: nameLabel },
  operator: { resource: "operators", scope: "global", label: nameLabel },
  tariff: { resource: "tariffs", scope: "global", label: nameLabel },
} as const;

/** The seed's ДВО tab (supplementary services, PRODUCT.md §4.9). */
export function servicesTab<T extends { services?: unknown }>(): TabDef<T> {
  return {
    key: "services",
    label: "tabs.services",
    fields: [{ name: "services" as FieldDef<T>["name"], kind: "services", label: "tabs.services" }],
  };
}

type Limits = Pick<Schemas["PortCreate"], "max_concurrent_incoming" | "max_incoming_duration_s">;

/** The seed's Ограничения tab: Длительность входящих, Количество входящих. */
export function limitsFields<T extends Limits>(): FieldDef<T>[] {
  return [
    { name: "max_incoming_duration_s", kind: "int", label: "f.max_incoming_duration_s", min: 0, max: 86400 },
    { name: "max_concurrent_incoming", kind: "int", label: "f.max_concurrent_incoming", min: 0, max: 100000 },
  ] as FieldDef<T>[];
}
