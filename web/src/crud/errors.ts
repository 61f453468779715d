// Turning an API error into messages on the fields it names (ENGINEERING.md §5: validation
// errors name the field; docs/api.md: `{code, message, field, details}`).
import { ApiError } from "../api/client";
import type { Errors } from "./fields";
import type { TabDef } from "./types";

export interface MappedErrors {
  fields: Errors;
  /** What no field of the form can show: a banner above the tabs. */
  general: string | null;
}

function fieldNames(tabs: TabDef[]): string[] {
  return tabs.flatMap((tab) => (tab.fields ?? []).map((f) => f.name));
}

/** The form field an error path belongs to: itself or the longest field name prefixing it. */
export function owningField(path: string, names: string[]): string | null {
  const matches = names.filter((n) => path === n || path.startsWith(`${n}.`));
  return matches.sort((a, b) => b.length - a.length)[0] ?? null;
}

function messageOf(message: string, field: string): string {
  // The API prefixes messages with the field ("number: already exists"); the input shows it.
  return message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

export function mapApiError(err: unknown, tabs: TabDef[], fallback: string): MappedErrors {
  if (!(err instanceof ApiError)) return { fields: {}, general: err instanceof Error ? err.message : fallback };
  const names = fieldNames(tabs);
  const fields: Errors = {};
  const pairs: [string, string][] = err.details
    .filter((d) => typeof d.field === "string" && d.message)
    .map((d) => [d.field as string, String(d.message)]);
  if (err.field && !pairs.some(([f]) => f === err.field)) pairs.unshift([err.field, err.message]);
  const unplaced: string[] = [];
  for (const [path, message] of pairs) {
    const owner = owningField(path, names);
    if (owner === null) {
      unplaced.push(message);
      continue;
    }
    const text = messageOf(message, path);
    fields[path] ??= text;
    fields[owner] ??= text;
  }
  const general = pairs.length === 0 ? err.message : unplaced.length ? unplaced.join("; ") : null;
  return { fields, general };
}

export function tabOfErrors(tabs: TabDef[], errors: Errors): string | null {
  const keys = Object.keys(errors);
  const tab = tabs.find((t) => (t.fields ?? []).some((f) => keys.includes(f.name)));
  return tab?.key ?? null;
}
