import { useCallback } from "react";
import { useTranslation } from "react-i18next";
import type { Text } from "./types";

/** Resolves a Text (an i18n key or a [ru, en] pair) in the current language. */
export function useText(): (text: Text, vars?: Record<string, unknown>) => string {
  const { t, i18n } = useTranslation();
  return useCallback(
    (text: Text, vars?: Record<string, unknown>) =>
      typeof text === "string" ? String(t(text, vars ?? {})) : i18n.language === "en" ? text[1] : text[0],
    [t, i18n.language],
  );
}

/** Reads a dotted path ("limits.max_call_duration_s") of a plain object. */
export function getPath(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((cur, key) => {
    if (cur === null || cur === undefined || typeof cur !== "object") return undefined;
    return (cur as Record<string, unknown>)[key];
  }, obj);
}

/** A copy of `obj` with the dotted path set to `value`. */
export function setPath<T extends Record<string, unknown>>(obj: T, path: string, value: unknown): T {
  const [head, ...rest] = path.split(".");
  if (rest.length === 0) return { ...obj, [head]: value };
  const child = (obj[head] ?? {}) as Record<string, unknown>;
  return { ...obj, [head]: setPath(child, rest.join("."), value) };
}
