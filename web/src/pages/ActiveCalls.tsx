// Активные вызовы (AC-1): the client's calls right now, pushed by the server (Server-Sent
// Events: a snapshot, then started/answered/held/resumed/updated/ended); if the stream fails
// the list is polled every 10 s. Hang-up only with the "manage calls" right; the server checks.
import { Alert, Badge, Button, Center, Group, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { modals } from "@mantine/modals";
import { notifications } from "@mantine/notifications";
import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { useText } from "../crud/text";
import { can } from "../rights";
import { duration } from "./Calls";

type ActiveCall = Schemas["ActiveCallRead"];
type Mode = { kind: "stream" } | { kind: "polling"; why: "engine" | "stream_failed" };
const POLL_MS = 10_000;
const UPDATES = ["started", "answered", "held", "resumed", "updated"] as const;

const STATES: Record<string, readonly [string, string]> = {
  ringing: ["Вызов", "Ringing"],
  answered: ["Разговор", "Talking"],
  held: ["Удержание", "On hold"],
};

function upsert(calls: ActiveCall[], call: ActiveCall): ActiveCall[] {
  const i = calls.findIndex((c) => c.uuid === call.uuid);
  return i < 0 ? [...calls, call] : calls.map((c, k) => (k === i ? call : c));
}

interface Live {
  calls: ActiveCall[] | null;
  engineRunning: boolean | null;
  mode: Mode;
}

/** The stream while it works; polling when it fails or when no engine runs (then a stream
 * would only say "nothing" and end). Polling that sees the engine up goes back to the stream. */
function useActiveCalls(clientId: number): Live {
  const [mode, setMode] = useState<Mode>({ kind: "stream" });
  const [calls, setCalls] = useState<ActiveCall[] | null>(null);
  const [engineRunning, setEngineRunning] = useState<boolean | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (mode.kind !== "stream") return;
    const source = new EventSource(`/api/v1/clients/${clientId}/active-calls/stream`);
    source.addEventListener("snapshot", (e) => {
      const data = JSON.parse((e as MessageEvent<string>).data) as { engine_running: boolean; calls: ActiveCall[] };
      setCalls(data.calls);
      setEngineRunning(data.engine_running);
      if (!data.engine_running) {
        source.close();
        setMode({ kind: "polling", why: "engine" });
      }
    });
    for (const kind of UPDATES) source.addEventListener(kind, (e) => setCalls((c) => upsert(c ?? [], JSON.parse((e as MessageEvent<string>).data) as ActiveCall)));
    source.addEventListener("ended", (e) => {
      const ended = JSON.parse((e as MessageEvent<string>).data) as ActiveCall;
      setCalls((c) => (c ?? []).filter((x) => x.uuid !== ended.uuid));
    });
    // The reader fell behind: a fresh stream starts with a fresh snapshot.
    source.addEventListener("dropped", () => {
      source.close();
      setAttempt((a) => a + 1);
    });
    source.onerror = () => {
      source.close();
      setMode({ kind: "polling", why: "stream_failed" });
    };
    return () => source.close();
  }, [clientId, mode.kind, attempt]);

  const poll = useQuery({
    queryKey: ["active-calls", clientId],
    queryFn: () => http<Schemas["ActiveCallList"]>("GET", `/clients/${clientId}/active-calls`),
    enabled: mode.kind === "polling",
    refetchInterval: POLL_MS,
  });
  useEffect(() => {
    if (!poll.data) return;
    setCalls(poll.data.items);
    setEngineRunning(poll.data.engine_running);
    if (poll.data.engine_running && mode.kind === "polling" && mode.why === "engine") setMode({ kind: "stream" });
  }, [poll.data, mode]);
  return { calls, engineRunning, mode };
}

function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

export function ActiveCallsPage({ clientId }: { clientId: number }) {
  const text = useText();
  const { t, i18n } = useTranslation();
  const me = useMe();
  const { calls, engineRunning, mode } = useActiveCalls(clientId);
  const now = useNow();
  const mayHangUp = can(me, "active_calls", "update");

  const hangup = (call: ActiveCall) =>
    modals.openConfirmModal({
      title: text(["Завершить вызов?", "Hang up the call?"]),
      children: <Text size="sm">{`${call.caller} → ${call.called}`}</Text>,
      labels: { confirm: text(["Завершить", "Hang up"]), cancel: text(["Отмена", "Cancel"]) },
      confirmProps: { color: "red" },
      onConfirm: () =>
        void http("POST", `/clients/${clientId}/active-calls/${encodeURIComponent(call.uuid)}/hangup`)
          .then(() => notifications.show({ color: "green", message: text(["Вызов завершается", "The call is being hung up"]) }))
          .catch((err: unknown) => notifications.show({ color: "red", message: err instanceof ApiError ? err.message : String(err) })),
    });

  const refresh =
    mode.kind === "stream"
      ? text(["Обновляется сразу (поток событий)", "Updated live (event stream)"])
      : mode.why === "stream_failed"
        ? text(["Поток событий недоступен: список обновляется каждые 10 с", "The event stream failed: the list is refreshed every 10 s"])
        : text(["Список проверяется каждые 10 с", "The list is checked every 10 s"]);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("menu.activeCalls")}</Title>
        <Text size="sm" c="dimmed" data-testid="refresh-mode">
          {refresh}
        </Text>
      </Group>
      {engineRunning === false && (
        <Alert color="yellow" title={text(["Обработка вызовов не запущена", "Call processing is not running"])} data-testid="engine-not-running">
          {text([
            "Сервер работает без движка вызовов (SIP): активных вызовов нет, пока он не запущен (cloudpbx run).",
            "The server runs without the call engine (SIP): there are no active calls until it is started (cloudpbx run).",
          ])}
        </Alert>
      )}
      {calls === null ? (
        <Center p="xl">
          <Loader aria-label={t("common.loading")} />
        </Center>
      ) : calls.length === 0 ? (
        <Text c="dimmed" ta="center" p="xl" data-testid="no-active-calls">
          {text(["Сейчас нет активных вызовов", "No active calls right now"])}
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={700}>
          <Table striped aria-label={t("menu.activeCalls")}>
            <Table.Thead>
              <Table.Tr>
                {[["Начало", "Start"], ["Длительность", "Duration"], ["Кто звонит", "Caller"], ["Куда", "Called"], ["Внутренний", "Internal"], ["Состояние", "State"], ["Участники", "Parties"]].map((h) => (
                  <Table.Th key={h[0]}>{text(h as [string, string])}</Table.Th>
                ))}
                {mayHangUp && <Table.Th />}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {calls.map((c) => (
                <Table.Tr key={c.uuid}>
                  <Table.Td>{new Date(c.start_ms).toLocaleTimeString(i18n.language === "en" ? "en-GB" : "ru-RU")}</Table.Td>
                  <Table.Td>{duration(now - (c.answer_ms ?? c.start_ms))}</Table.Td>
                  <Table.Td>{c.caller}</Table.Td>
                  <Table.Td>{c.called}</Table.Td>
                  <Table.Td>{c.internal_number ?? "—"}</Table.Td>
                  <Table.Td>
                    <Badge variant="light">{text(STATES[c.state] ?? [c.state, c.state])}</Badge>
                  </Table.Td>
                  <Table.Td>{c.legs.map((l) => `${l.party} (${l.state})`).join(", ")}</Table.Td>
                  {mayHangUp && (
                    <Table.Td>
                      <Button size="compact-sm" color="red" variant="light" onClick={() => hangup(c)}>
                        {text(["Завершить", "Hang up"])}
                      </Button>
                    </Table.Td>
                  )}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
