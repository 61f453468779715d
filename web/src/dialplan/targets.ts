// The client's objects a step may target (DP-1: typed references, never text), loaded once per
// collection through the generic list cache, so a new port shows up here as everywhere else.
import { collectionPath, REF_LIMIT, useList } from "../crud/resource";
import { TARGET_COLLECTIONS, type TargetKind } from "./model";

export interface TargetOption {
  value: string;
  label: string;
}

export type TargetOptions = Record<TargetKind, TargetOption[]>;

const KINDS = Object.keys(TARGET_COLLECTIONS) as TargetKind[];

function useKind(kind: TargetKind, clientId: number) {
  const def = TARGET_COLLECTIONS[kind];
  const list = useList(collectionPath(def.resource, "client", clientId), { limit: REF_LIMIT });
  return (list.data?.items ?? []).map((row) => ({ value: String(row.id), label: def.label(row) }));
}

/** Every target collection of the client. Hooks are called in a fixed order (one per kind). */
export function useTargets(clientId: number): TargetOptions {
  const out = {} as TargetOptions;
  for (const kind of KINDS) {
    // KINDS is a constant list, so the hooks run in the same order on every render.
    out[kind] = useKind(kind, clientId);
  }
  return out;
}

export function targetName(options: TargetOptions, kind: TargetKind | undefined, id: number | undefined): string | null {
  if (!kind || id === undefined) return null;
  return options[kind]?.find((o) => o.value === String(id))?.label ?? `#${id}`;
}
