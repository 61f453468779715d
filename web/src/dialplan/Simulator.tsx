// Тестовый звонок (DP-6): who calls, when, how each rung target behaves, which keys the caller
// presses; the server runs the engine's own interpreter on the stored version and answers with
// the path. The page highlights that path on the graph; here the moves are listed with reasons.
import { Alert, Badge, Button, Group, NumberInput, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { ApiError, http, type Schemas } from "../api/client";
import { useText } from "../crud/text";
import { ACTIONS, CLASSIFIER_EXITS, CONDITIONS, TARGET_COLLECTIONS, type Step, type TargetKind } from "./model";
import { targetName, type TargetOptions } from "./targets";

export type Simulation = Schemas["SimulationOut"];
type Assumption = Schemas["AssumptionBody"];

const RUNG: TargetKind[] = ["port", "queue", "forwarding_number"];

const STATES: Record<string, readonly [string, string]> = {
  no_answer: ["Зарегистрирован, не отвечает", "Registered, no answer"],
  unregistered: ["Не зарегистрирован / нет агентов", "Not registered / no agent"],
  busy: ["Занято", "Busy"],
  answer: ["Отвечает", "Answers"],
  fail: ["Ошибка вызова", "Call fails"],
};

export const ENDINGS: Record<string, readonly [string, string]> = {
  after_answer: ["Завершён после ответа", "Ended after answer"],
  no_answer: ["Нет ответа", "No answer"],
  busy: ["Занято", "Busy"],
  no_route: ["Нет маршрута", "No route"],
  hangup: ["Отбой", "Hung up"],
  loop: ["Зацикливание (50 переходов)", "Loop (50 transitions)"],
  no_entry: ["Нет шага 1", "No step 1"],
  unknown_number: ["Номер не существует", "Unknown number"],
};

interface TargetState {
  state: string;
  after: number | string;
  digits: string;
  found: string | null;
}

interface Props {
  clientId: number;
  dialplanId: number;
  version: number | null;
  steps: Step[];
  targets: TargetOptions;
  dirty: boolean;
  result: Simulation | null;
  onResult: (result: Simulation | null) => void;
}

function usedTargets(steps: Step[]): { kind: TargetKind; id: number }[] {
  const seen = new Map<string, { kind: TargetKind; id: number }>();
  for (const s of steps) if (s.target) seen.set(`${s.target.kind}:${s.target.id}`, s.target);
  return [...seen.values()];
}

function assumption(kind: TargetKind, id: number, st: TargetState): Assumption | null {
  const target = { kind, id };
  if (RUNG.includes(kind)) {
    const after = st.after === "" ? null : Number(st.after);
    if (st.state === "unregistered") return { target, registered: false, answer: "no_answer", talk_s: 30, digits: [] };
    if (st.state === "no_answer") return null;
    return { target, registered: true, answer: st.state as Assumption["answer"], after_s: after, talk_s: 30, digits: [] };
  }
  if (kind === "voice_menu" && st.digits) return { target, registered: true, answer: "no_answer", talk_s: 30, digits: st.digits.split(/[\s,]+/).filter(Boolean) };
  if (kind === "classifier" && st.found) return { target, registered: true, answer: "no_answer", talk_s: 30, digits: [], found: st.found === "yes" };
  return null;
}

/** The label of a move's condition in the seed's words. */
export function moveLabel(condition: string, text: (p: readonly [string, string]) => string): string {
  const c = CONDITIONS.find((x) => x.key === condition) ?? CLASSIFIER_EXITS.find((x) => x.key === condition);
  if (c) return text(c.label);
  if (condition === "entry") return text(["Вход", "Entry"]);
  if (condition === "goto_number") return text(["Переход на номер", "Go to number"]);
  return condition;
}

function TargetRow({ kind, name, st, set }: { kind: TargetKind; name: string; st: TargetState; set: (s: TargetState) => void }) {
  const text = useText();
  const label = `${text(TARGET_COLLECTIONS[kind].title)} ${name}`;
  if (RUNG.includes(kind))
    return (
      <Group align="end" gap="xs" wrap="nowrap">
        <Select
          label={label}
          data={Object.entries(STATES).map(([value, l]) => ({ value, label: text(l) }))}
          value={st.state}
          onChange={(v) => v && set({ ...st, state: v })}
          allowDeselect={false}
          style={{ flex: 1 }}
        />
        {["answer", "busy", "fail"].includes(st.state) && (
          <NumberInput label={text(["через, с", "after, s"])} aria-label={`${label}: ${text(["через, с", "after, s"])}`} w={90} min={0} max={86400} value={st.after} onChange={(v) => set({ ...st, after: v })} />
        )}
      </Group>
    );
  if (kind === "voice_menu")
    return <TextInput label={`${label}: ${text(["нажатые клавиши", "keys pressed"])}`} placeholder="1, 105#" value={st.digits} onChange={(e) => set({ ...st, digits: e.currentTarget.value })} />;
  if (kind === "classifier")
    return (
      <Select
        label={label}
        clearable
        placeholder={text(["по списку контактов", "by the contact list"])}
        data={[
          { value: "yes", label: text(["Звонящий в списке", "Caller is listed"]) },
          { value: "no", label: text(["Звонящего нет в списке", "Caller is not listed"]) },
        ]}
        value={st.found}
        onChange={(v) => set({ ...st, found: v })}
      />
    );
  return null;
}

export function SimulatorPanel({ clientId, dialplanId, version, steps, targets, dirty, result, onResult }: Props) {
  const text = useText();
  const [caller, setCaller] = useState("");
  const [time, setTime] = useState("");
  const [states, setStates] = useState<Record<string, TargetState>>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const used = usedTargets(steps).filter((t) => RUNG.includes(t.kind) || t.kind === "voice_menu" || t.kind === "classifier");
  const stateOf = (key: string): TargetState => states[key] ?? { state: "no_answer", after: 3, digits: "", found: null };

  const run = async () => {
    setBusy(true);
    setError(null);
    const assumptions = used.flatMap((t) => assumption(t.kind, t.id, stateOf(`${t.kind}:${t.id}`)) ?? []);
    try {
      const body = { caller, time: time || null, version, assumptions, menu_digits: [] };
      onResult(await http<Simulation>("POST", `/clients/${clientId}/dialplans/${dialplanId}/simulate`, { body }));
    } catch (err) {
      setError(err instanceof ApiError ? `${err.field ? `${err.field}: ` : ""}${err.message}` : String(err));
      onResult(null);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Stack gap="sm" data-testid="simulator">
      <Title order={4}>{text(["Тестовый звонок", "Test call"])}</Title>
      {dirty && (
        <Alert color="yellow" p="xs">
          {text(["Есть несохранённые изменения: звонок пройдёт по сохранённой версии.", "Unsaved changes: the call runs on the saved version."])}
        </Alert>
      )}
      <TextInput label={text(["Кто звонит", "Caller"])} placeholder="+79161234567" value={caller} onChange={(e) => setCaller(e.currentTarget.value)} />
      <TextInput
        type="datetime-local"
        label={text(["Время звонка", "Time of the call"])}
        description={text(["Время клиента; пусто — сейчас", "The client's local time; empty = now"])}
        value={time}
        onChange={(e) => setTime(e.currentTarget.value)}
      />
      {used.map((t) => {
        const key = `${t.kind}:${t.id}`;
        return <TargetRow key={key} kind={t.kind} name={targetName(targets, t.kind, t.id) ?? ""} st={stateOf(key)} set={(s) => setStates({ ...states, [key]: s })} />;
      })}
      <Group>
        <Button onClick={() => void run()} loading={busy}>
          {text(["Позвонить", "Call"])}
        </Button>
        {result && (
          <Button variant="subtle" onClick={() => onResult(null)}>
            {text(["Сбросить", "Clear"])}
          </Button>
        )}
      </Group>
      {error && <Alert color="red">{error}</Alert>}
      {result && <PathList moves={result.moves} />}
      {result && (
        <Text size="sm" data-testid="simulation-outcome">
          {text(["Итог", "Outcome"])}: <Badge>{text(ENDINGS[result.outcome] ?? [result.outcome, result.outcome])}</Badge>{" "}
          {result.sip_status ? `SIP ${result.sip_status}` : text(["BYE (звонящему ответили)", "BYE (the caller was answered)"])} · {text(["шаги", "steps"])}{" "}
          {result.steps.join(" → ")} · {result.seconds} {text(["с", "s"])}
        </Text>
      )}
      <Text size="xs" c="dimmed">
        {text(
          [
            "Ничего не звонит и не записывается: ответы задаёте вы. Действия без цели (например, " + ACTIONS.hangup.label[0] + ") не требуют допущений.",
            "Nothing rings and nothing is stored: you choose the answers. Actions without a target (e.g. " + ACTIONS.hangup.label[1] + ") need no assumption.",
          ] as const,
        )}
      </Text>
    </Stack>
  );
}

export function PathList({ moves }: { moves: { from_level: number | null; to_level: number | null; condition: string; reason: string; elapsed_s?: number }[] }) {
  const text = useText();
  return (
    <Table withTableBorder fz="xs" data-testid="path-list" verticalSpacing={4}>
      <Table.Tbody>
        {moves.map((m, i) => (
          <Table.Tr key={i}>
            <Table.Td valign="top">{i + 1}</Table.Td>
            <Table.Td>
              <Text size="xs" fw={600}>
                {m.from_level ?? "•"} → {m.to_level ?? text(["конец", "end"])} · {moveLabel(m.condition, text)}
                {m.elapsed_s !== undefined ? ` · +${m.elapsed_s} ${text(["с", "s"])}` : ""}
              </Text>
              <Text size="xs" c="dimmed">
                {m.reason}
              </Text>
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
