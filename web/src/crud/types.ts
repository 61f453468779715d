// Declarative description of a resource section: the list's columns and the form's tabs and
// fields. One generic list page and one generic form page render every section from these
// (issue 6 §3); field names are checked against the generated API schema at compile time.
import type { ComponentType, ReactNode } from "react";
import type { Query } from "../api/client";
import type { PolicyName } from "../rights";

/** An i18n key of the dictionaries, or a pair [Russian, English] for a section's own words. */
export type Text = string | readonly [string, string];

export type FieldKind =
  | "text"
  | "textarea"
  | "password"
  | "int"
  | "money"
  | "switch"
  | "select"
  | "ref"
  | "multiref"
  | "multiselect"
  | "services"
  | "rows"
  | "tags";

export interface Option {
  value: string;
  label: Text;
}

export type Row = Record<string, unknown>;

export interface RefDef {
  /** API segment of the referenced resource (under the client for client sections). */
  resource: string;
  scope?: "client" | "global";
  label: (row: Row) => string;
  query?: Query;
}

// Field names are paths: "limits.max_call_duration_s" edits a nested object's member.
type FieldName<T> = (keyof T & string) | `${keyof T & string}.${string}`;

export interface FieldDef<T = Row> {
  name: FieldName<T>;
  kind: FieldKind;
  label: Text;
  required?: boolean;
  options?: Option[];
  ref?: RefDef;
  /** Sub-fields of one row of a "rows" field (queue agents, menu keys, rewrite rules). */
  columns?: FieldDef<Row>[];
  newRow?: Row;
  default?: unknown;
  help?: Text;
  placeholder?: Text;
  /** Shown only when creating (e.g. a parent id fixed afterwards). */
  createOnly?: boolean;
  readOnly?: boolean;
  /** Never read back (passwords): empty means "leave as it is" when editing. */
  writeOnly?: boolean;
  /** Optional text the API wants as null rather than "" (e-mail, area code, username). */
  nullable?: boolean;
  /** Shown only to users whose rights allow reading under this policy (e.g. the operator
   * of an external number: operators are the provider's, NUM-1). */
  policy?: PolicyName;
  /** int fields: the range the API accepts. */
  min?: number;
  max?: number;
}

export interface TabProps {
  clientId: number | null;
  row: Row;
  section: SectionDef;
}

export interface TabDef<T = Row> {
  key: string;
  label: Text;
  fields?: FieldDef<T>[];
  /** A custom tab (contacts of a classifier, audio of a media file): shown when editing. */
  render?: ComponentType<TabProps>;
  /** Shown only to users whose rights allow reading under this policy (a client's billing). */
  policy?: PolicyName;
}

export interface ColumnDef {
  key: string;
  label: Text;
  render?: (row: Row, ctx: { t: (text: Text) => string }) => ReactNode;
}

export interface SectionDef<C = Row> {
  /** Route segment, and the API segment unless `api` says otherwise. */
  key: string;
  api?: string;
  scope: "client" | "global";
  title: Text;
  policy: PolicyName;
  columns: ColumnDef[];
  tabs: TabDef<C>[];
  rowLabel: (row: Row) => string;
  /** Fixed list filters, e.g. the contacts of one classifier. */
  query?: Query;
  sort?: string;
  search?: boolean;
  /** Extra buttons or text on the edit page, below the tabs. */
  extra?: ComponentType<TabProps>;
}

export function defineSection<C>(def: SectionDef<C>): SectionDef {
  return def as unknown as SectionDef;
}
