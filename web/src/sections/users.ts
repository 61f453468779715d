// Пользователи of a client (ADM-1…ADM-3): level, rights (the seed's names), their numbers.
import type { Schemas } from "../api/client";
import { defineSection, type Option, type Row, type SectionDef, type TabDef, type Text } from "../crud/types";
import type { PolicyName } from "../rights";
import { LANGUAGE_OPTIONS, refs } from "./common";

// The company rights and ADM-2 sets with the seed's titles (cloudpbx/rights.py DESCRIPTIONS).
const RIGHTS: Option[] = [
  { value: "https.login", label: ["Вход по HTTPS", "HTTPS login"] },
  { value: "users.view_settings", label: ["Просмотр настроек пользователей", "View users' settings"] },
  { value: "users.view_cdr", label: ["Просмотр детализации пользователей", "View users' CDR"] },
  { value: "users.manage_calls", label: ["Управление вызовами пользователей", "Manage users' calls"] },
  { value: "users.edit", label: ["Редактирование пользователей", "Edit users"] },
  { value: "users.add", label: ["Добавление пользователей", "Add users"] },
  { value: "users.delete", label: ["Удаление пользователей", "Delete users"] },
  { value: "own.view_settings", label: ["Просмотр настроек", "View settings"] },
  { value: "own.view_cdr", label: ["Просмотр детализации", "View CDR"] },
  { value: "own.manage_calls", label: ["Управление вызовами", "Manage calls"] },
  { value: "own.change_settings", label: ["Изменение настроек", "Change settings"] },
  { value: "extra.pin_auth", label: ["Авторизация по PIN-коду", "PIN authorization"] },
  { value: "extra.clip_auth", label: ["Авторизация по CLIP", "CLIP authorization"] },
  { value: "extra.web_services", label: ["Использование WEB-служб", "Web services"] },
  { value: "extra.advanced_settings", label: ["Расширенные настройки", "Advanced settings"] },
  { value: "extra.telemarketing", label: ["Телемаркетинг", "Telemarketing"] },
];

const LEVELS: Option[] = [
  { value: "client_admin", label: "levels.client_admin" },
  { value: "client_user", label: "levels.client_user" },
];

type Account = Schemas["UserCreate"];

interface AccountOptions {
  key: string;
  scope: "client" | "global";
  title: Text;
  policy: PolicyName;
  levels: Option[];
  defaultLevel: string;
  rights: Option[];
  extraTabs?: TabDef<Account>[];
}

/** The accounts of ADM-1: a client's users and the provider's staff share one form (login,
 * password, name, level, language, rights); only the levels, rights and extra tabs differ. */
export function accountSection(o: AccountOptions): SectionDef {
  return defineSection<Account>({
    key: o.key,
    scope: o.scope,
    title: o.title,
    policy: o.policy,
    sort: "login",
    rowLabel: (row: Row) => String(row.login),
    columns: [
      { key: "login", label: "login.login" },
      { key: "full_name", label: ["ФИО", "Full name"] },
      { key: "level", label: ["Уровень", "Level"], render: (row, { t }) => t(`levels.${row.level}`) },
      { key: "is_active", label: "f.is_active" },
    ],
    tabs: [
      {
        key: "general",
        label: "tabs.general",
        fields: [
          { name: "login", kind: "text", label: "login.login", required: true },
          { name: "password", kind: "password", label: "login.password", required: true, writeOnly: true, help: ["Не короче 10 символов", "At least 10 characters"] },
          { name: "full_name", kind: "text", label: ["ФИО", "Full name"] },
          { name: "email", kind: "text", label: ["E-mail", "E-mail"], nullable: true },
          { name: "level", kind: "select", label: ["Уровень", "Level"], options: o.levels, default: o.defaultLevel, required: true },
          { name: "language", kind: "select", label: "f.language", options: LANGUAGE_OPTIONS, default: "ru", required: true },
          { name: "is_active", kind: "switch", label: "f.is_active", default: true },
        ],
      },
      {
        key: "rights",
        label: "tabs.rights",
        fields: [
          {
            name: "rights",
            kind: "multiselect",
            label: "tabs.rights",
            options: o.rights,
            default: null,
            help: ["Пусто — набор прав уровня", "Empty: the level's preset"],
          },
        ],
      },
      ...(o.extraTabs ?? []),
    ],
  });
}

export const users = accountSection({
  key: "users",
  scope: "client",
  title: "menu.users",
  policy: "client_users",
  levels: LEVELS,
  defaultLevel: "client_user",
  rights: RIGHTS,
  extraTabs: [
    {
      key: "numbers",
      label: "tabs.numbers",
      fields: [
        { name: "internal_number_ids", kind: "multiref", label: "menu.internalNumbers", ref: refs.internalNumber },
        { name: "external_number_ids", kind: "multiref", label: "menu.externalNumbers", ref: refs.externalNumber },
      ],
    },
  ],
});
