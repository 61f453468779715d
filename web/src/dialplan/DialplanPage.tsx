// Routes of the dialplan editor: a number's dialplan (its current version, or an old one
// read-only with ?version=N) and a recorded call's path on the version it ran on (DP-7).
import { Alert, Center, Loader } from "@mantine/core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate, useSearchParams } from "react-router-dom";
import { http, type Page, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { useText } from "../crud/text";
import { can } from "../rights";
import { DialplanEditor, type Owner, type Shown } from "./DialplanEditor";
import type { DialplanRead } from "./Versions";

type NumberKind = "internal-numbers" | "external-numbers";
type VersionRead = Schemas["VersionRead"];
type CallDetail = Schemas["CallDetail"];

const FIELD: Record<NumberKind, Owner["field"]> = { "internal-numbers": "internal_number_id", "external-numbers": "external_number_id" };

function Loading() {
  return (
    <Center p="xl">
      <Loader />
    </Center>
  );
}

/** The dialplan of a number (NUM-3: at most one), or null when it has none yet. */
function useDialplanOf(clientId: number, kind: NumberKind, numberId: number) {
  return useQuery({
    queryKey: ["dialplan", clientId, kind, numberId],
    queryFn: async () => {
      const page = await http<Page<DialplanRead>>("GET", `/clients/${clientId}/dialplans`, { query: { [FIELD[kind]]: numberId, limit: 1 } });
      return page.items[0] ?? null;
    },
  });
}

function useVersion(clientId: number, plan: DialplanRead | null | undefined, version: number | null) {
  return useQuery({
    queryKey: ["dialplan", clientId, "version", plan?.id, version],
    queryFn: () => http<VersionRead>("GET", `/clients/${clientId}/dialplans/${plan!.id}/versions/${version}`),
    enabled: !!plan && version !== null && version !== plan.version,
  });
}

interface ViewProps {
  clientId: number;
  kind: NumberKind;
  numberId: number;
  version: number | null;
  callPath?: { steps: number[]; title: string } | null;
  onOpenVersion: (version: number | null) => void;
}

function DialplanView({ clientId, kind, numberId, version, callPath, onOpenVersion }: ViewProps) {
  const text = useText();
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const number = useQuery({ queryKey: ["res", `/clients/${clientId}/${kind}`, "item", String(numberId)], queryFn: () => http<Record<string, unknown>>("GET", `/clients/${clientId}/${kind}/${numberId}`) });
  const plan = useDialplanOf(clientId, kind, numberId);
  const old = useVersion(clientId, plan.data, version);
  const error = number.error ?? plan.error ?? old.error;
  if (error) return <Alert color="red">{error.message}</Alert>;
  if (!number.data || plan.data === undefined || (old.fetchStatus === "fetching" && !old.data)) return <Loading />;
  const current = plan.data;
  const mayCreate = can(me, "number_config", "create");
  const mayUpdate = can(me, "number_config", "update");
  if (!current && !mayCreate) return <Alert color="yellow">{text(["У этого номера ещё нет диалплана.", "This number has no dialplan yet."])}</Alert>;
  const viewingOld = !!current && version !== null && version !== current.version && !!old.data;
  const shown: Shown = viewingOld
    ? { version: old.data!.number, steps: old.data!.steps, layout: old.data!.layout, warnings: old.data!.warnings }
    : current
      ? { version: current.version, steps: current.steps, layout: current.layout, warnings: current.warnings }
      : { version: null, steps: [], layout: {}, warnings: [] };
  const readOnly = viewingOld || !!callPath || !mayUpdate;
  const reason = viewingOld
    ? `${text(["Версия", "Version"])} ${shown.version} ${text(["— только просмотр. Текущая версия", "is read-only. The current version is"])} ${current!.version}.`
    : !mayUpdate
      ? text(["Только просмотр: у вас нет права менять диалплан.", "Read-only: you have no right to change the dialplan."])
      : undefined;
  const reload = () => void queryClient.invalidateQueries({ queryKey: ["dialplan", clientId] });
  return (
    <DialplanEditor
      key={`${current?.id ?? "new"}-${shown.version}-${callPath ? "call" : ""}`}
      clientId={clientId}
      owner={{ field: FIELD[kind], id: numberId, number: String(number.data.number) }}
      plan={current}
      shown={shown}
      readOnly={readOnly}
      canEdit={mayUpdate}
      readOnlyReason={reason}
      callPath={callPath}
      onSaved={(saved) => {
        queryClient.setQueryData(["dialplan", clientId, kind, numberId], saved);
        onOpenVersion(null);
      }}
      onReload={reload}
      onOpenVersion={onOpenVersion}
      onClose={() => navigate(`/clients/${clientId}/${kind}`)}
    />
  );
}

export function NumberDialplanPage({ clientId, kind, numberId }: { clientId: number; kind: NumberKind; numberId: number }) {
  const [params, setParams] = useSearchParams();
  const version = params.get("version") ? Number(params.get("version")) : null;
  return (
    <DialplanView
      clientId={clientId}
      kind={kind}
      numberId={numberId}
      version={version}
      onOpenVersion={(n) => setParams(n === null ? {} : { version: String(n) })}
    />
  );
}

interface CallPlace {
  kind: NumberKind;
  numberId: number;
  version: number | null;
}

/** DP-7: the number whose dialplan the call ran and the version it ran on (the call detail
 * names both; a dialplan deleted since leaves the call without a graph). */
async function placeOfCall(clientId: number, call: CallDetail): Promise<CallPlace | null> {
  if (call.dialplan_id === null || call.dialplan_version === null) return null;
  const plan = await http<DialplanRead>("GET", `/clients/${clientId}/dialplans/${call.dialplan_id}`);
  if (plan.internal_number_id) return { kind: "internal-numbers", numberId: plan.internal_number_id, version: call.dialplan_version };
  if (plan.external_number_id) return { kind: "external-numbers", numberId: plan.external_number_id, version: call.dialplan_version };
  return null;
}

export function CallDialplanPage({ clientId, callId }: { clientId: number; callId: number }) {
  const text = useText();
  const navigate = useNavigate();
  const call = useQuery({ queryKey: ["calls", clientId, callId], queryFn: () => http<CallDetail>("GET", `/clients/${clientId}/calls/${callId}`) });
  const place = useQuery({
    queryKey: ["call-dialplan", clientId, callId],
    queryFn: () => placeOfCall(clientId, call.data!),
    enabled: !!call.data,
  });
  const error = call.error ?? place.error;
  if (error) return <Alert color="red">{error.message}</Alert>;
  if (!call.data || place.isPending) return <Loading />;
  if (!place.data) return <Alert color="yellow">{text(["Номер этого вызова не найден: возможно, он удалён.", "The number of this call was not found: it may have been deleted."])}</Alert>;
  if (place.data.version === null)
    return <Alert color="yellow">{text(["У номера не было диалплана, когда шёл этот вызов.", "The number had no dialplan when this call took place."])}</Alert>;
  const c = call.data;
  const title = `${text(["Вызов", "Call"])} ${c.caller} → ${c.called}, ${new Date(c.start_ms).toLocaleString()}`;
  return (
    <DialplanView
      clientId={clientId}
      kind={place.data.kind}
      numberId={place.data.numberId}
      version={place.data.version}
      callPath={{ steps: c.steps, title }}
      onOpenVersion={(n) => navigate(`/clients/${clientId}/${place.data!.kind}/${place.data!.numberId}/dialplan${n === null ? "" : `?version=${n}`}`)}
    />
  );
}
