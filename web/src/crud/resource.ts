// Data access for the generic pages: one TanStack Query key space per API collection, so a
// change anywhere refreshes every list and select that shows that collection.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";
import { http, type Page, type Query } from "../api/client";
import type { RefDef, Row, SectionDef } from "./types";

export const REF_LIMIT = 500;

export function collectionPath(
  segment: string,
  scope: "client" | "global",
  clientId: number | null,
): string {
  return scope === "client" ? `/clients/${clientId}/${segment}` : `/${segment}`;
}

export function sectionPath(section: SectionDef, clientId: number | null): string {
  return collectionPath(section.api ?? section.key, section.scope, clientId);
}

export function useList(path: string, query: Query, enabled = true) {
  return useQuery({
    queryKey: ["res", path, "list", query],
    queryFn: ({ signal }) => http<Page<Row>>("GET", path, { query, signal }),
    enabled,
    placeholderData: (previous) => previous,
  });
}

export function useItem(path: string, id: string | undefined) {
  return useQuery({
    queryKey: ["res", path, "item", id],
    queryFn: ({ signal }) => http<Row>("GET", `${path}/${id}`, { signal }),
    enabled: id !== undefined,
  });
}

/** Options of a reference select: every object of the referenced collection (up to 500). */
export function useRefOptions(ref: RefDef | undefined, clientId: number | null) {
  const path = ref ? collectionPath(ref.resource, ref.scope ?? "client", clientId) : "";
  const list = useList(path, { limit: REF_LIMIT, ...(ref?.query ?? {}) }, ref !== undefined);
  const options = (list.data?.items ?? []).map((row) => ({
    value: String(row.id),
    label: ref ? ref.label(row) : String(row.id),
  }));
  return { options, loading: list.isPending && ref !== undefined };
}

/** Refreshes everything cached for one collection (lists, items, reference selects). */
export function useInvalidate(): (path: string) => Promise<void> {
  const queryClient = useQueryClient();
  return useCallback(
    (path: string) => queryClient.invalidateQueries({ queryKey: ["res", path] }),
    [queryClient],
  );
}
