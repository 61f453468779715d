// Ресурс нумерации (NUM-1, NUM-2), Порты (PRT-1), Группы перехвата (PG-1).
import { createElement } from "react";
import type { Schemas } from "../api/client";
import { defineSection } from "../crud/types";
import { dialplanCell, dialplanExtra } from "./DialplanButton";
import { PortExtras, PortStatusCell } from "./PortStatus";
import { description, language, limitsFields, name, numberLabel, refs, servicesTab } from "./common";

export const internalNumbers = defineSection<Schemas["InternalNumberCreate"]>({
  key: "internal-numbers",
  extra: dialplanExtra("internal-numbers"),
  scope: "client",
  title: "menu.internalNumbers",
  policy: "internal_numbers",
  sort: "number",
  rowLabel: numberLabel,
  columns: [
    { key: "number", label: "f.number" },
    { key: "name", label: "f.name" },
    { key: "description", label: "f.description" },
    { key: "dialplan", label: ["Диалплан", "Dialplan"], render: dialplanCell("internal-numbers") },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "number", kind: "text", label: "f.number", required: true, placeholder: ["например, 100", "e.g. 100"] },
        { ...name, required: false },
        description,
      ],
    },
  ],
});

export const externalNumbers = defineSection<Schemas["ExternalNumberCreate"]>({
  key: "external-numbers",
  extra: dialplanExtra("external-numbers"),
  scope: "client",
  title: "menu.externalNumbers",
  policy: "external_numbers",
  sort: "number",
  rowLabel: numberLabel,
  columns: [
    { key: "number", label: "f.number" },
    { key: "description", label: "f.description" },
    { key: "dialplan", label: ["Диалплан", "Dialplan"], render: dialplanCell("external-numbers") },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { name: "number", kind: "text", label: "f.number", required: true, placeholder: ["+74951234567", "+74951234567"] },
        { name: "operator_id", kind: "ref", label: "f.operator_id", ref: refs.operator, policy: "system" },
        description,
      ],
    },
  ],
});

export const pickupGroups = defineSection<Schemas["PickupGroupCreate"]>({
  key: "pickup-groups",
  scope: "client",
  title: "menu.pickupGroups",
  policy: "client_config",
  sort: "number",
  rowLabel: numberLabel,
  columns: [
    { key: "number", label: "f.group" },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: ["Описание", "Description"],
      fields: [
        { name: "number", kind: "text", label: "f.group", required: true },
        { name: "description", kind: "text", label: "f.description", placeholder: ["Менеджеры", "Managers"] },
      ],
    },
  ],
});

export const ports = defineSection<Schemas["PortCreate"]>({
  key: "ports",
  extra: PortExtras,
  scope: "client",
  title: "menu.ports",
  policy: "client_config",
  sort: "name",
  rowLabel: (row) => String(row.name),
  columns: [
    { key: "name", label: "f.name" },
    { key: "sip_login", label: "f.sip_login" },
    { key: "is_active", label: "f.is_active" },
    { key: "registration", label: ["Регистрация", "Registration"], render: (row) => createElement(PortStatusCell, { row }) },
    { key: "description", label: "f.description" },
  ],
  tabs: [
    {
      key: "general",
      label: "tabs.general",
      fields: [
        { ...name, placeholder: ["Линия 1", "Line 1"] },
        { name: "sip_login", kind: "text", label: "f.sip_login", required: true, help: ["2–64 символа: латиница, цифры, . _ -", "2–64 characters: letters, digits, . _ -"] },
        { name: "sip_secret", kind: "password", label: "f.sip_secret", writeOnly: true, help: "common.generatedWhenEmpty" },
        {
          name: "auth_algorithm",
          kind: "select",
          label: "f.auth_algorithm",
          required: true,
          default: "MD5",
          options: [
            { value: "MD5", label: ["MD5", "MD5"] },
            { value: "SHA-256", label: ["SHA-256", "SHA-256"] },
          ],
        },
        { name: "pickup_group_id", kind: "ref", label: "f.pickup_group_id", ref: refs.pickupGroup },
        { name: "callerid_internal_id", kind: "ref", label: "f.callerid_internal_id", ref: refs.internalNumber },
        { name: "callerid_external_id", kind: "ref", label: "f.callerid_external_id", ref: refs.externalNumber },
        language,
        { name: "is_active", kind: "switch", label: "f.is_active", default: true },
        description,
      ],
    },
    servicesTab(),
    {
      key: "limits",
      label: "tabs.limits",
      fields: [
        ...limitsFields(),
        { name: "max_concurrent_outgoing", kind: "int", label: "f.max_concurrent_outgoing", min: 0, max: 100000 },
      ],
    },
  ],
});
