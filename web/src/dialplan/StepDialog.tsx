// The step window of the seed (figures 3–9): Действие (action, typed target, timeout),
// Условия (the step's level and condition → step, DP-3), Расписание (days, time ranges,
// dated exceptions, DP-1). "Готово" puts the step on the graph; Save stores the dialplan.
import { ActionIcon, Alert, Button, Checkbox, Group, Modal, NumberInput, Select, Stack, Switch, Tabs, Text, TextInput, Tooltip } from "@mantine/core";
import { IconPlus, IconTrash } from "@tabler/icons-react";
import { useState } from "react";
import { useText } from "../crud/text";
import { ACTIONS, CLASSIFIER_EXITS, CONDITIONS, TARGET_COLLECTIONS, WEEKDAYS, type Action, type Ranges, type Step } from "./model";
import type { TargetOptions } from "./targets";

interface Props {
  step: Step;
  isNew: boolean;
  levels: number[];
  targets: TargetOptions;
  readOnly: boolean;
  onApply: (step: Step) => void;
  onDelete: (level: number) => void;
  onCancel: () => void;
}

function RangesEditor({ ranges, onChange, readOnly, label }: { ranges: Ranges; onChange: (r: Ranges) => void; readOnly: boolean; label: string }) {
  const text = useText();
  const set = (i: number, j: 0 | 1, value: string) => onChange(ranges.map((r, k) => (k === i ? (j === 0 ? [value, r[1]] : [r[0], value]) : r)));
  return (
    <Stack gap={4}>
      {ranges.map((r, i) => (
        <Group key={i} gap="xs" align="end">
          <TextInput type="time" label={`${label} ${i + 1}: ${text(["с", "from"])}`} value={r[0]} onChange={(e) => set(i, 0, e.currentTarget.value)} readOnly={readOnly} />
          <TextInput type="time" label={text(["до", "to"])} value={r[1]} onChange={(e) => set(i, 1, e.currentTarget.value)} readOnly={readOnly} />
          {!readOnly && (
            <ActionIcon variant="subtle" color="red" aria-label={`${text(["Убрать интервал", "Remove range"])} ${i + 1}`} onClick={() => onChange(ranges.filter((_, k) => k !== i))}>
              <IconTrash size={16} />
            </ActionIcon>
          )}
        </Group>
      ))}
      {!readOnly && (
        <Button variant="subtle" size="compact-sm" leftSection={<IconPlus size={14} />} onClick={() => onChange([...ranges, ["09:00", "18:00"]])} w="fit-content">
          {text(["Добавить интервал времени", "Add a time range"])}
        </Button>
      )}
    </Stack>
  );
}

function stepOptions(levels: number[], word: string) {
  return levels.map((l) => ({ value: String(l), label: `${word} ${l}` }));
}

function ActionTab({ step, set, targets, levels, readOnly }: { step: Step; set: (s: Step) => void; targets: TargetOptions; levels: number[]; readOnly: boolean }) {
  const text = useText();
  const def = ACTIONS[step.action];
  const kind = def.kind;
  const changeAction = (value: string | null) => {
    if (!value) return;
    const action = value as Action;
    const keepTarget = ACTIONS[action].kind === kind;
    const params = action === "classifier" ? step.params : {};
    set({ ...step, action, target: keepTarget ? step.target : null, params });
  };
  const options = kind ? targets[kind] : [];
  return (
    <Stack>
      <Select
        label={text(["Действие", "Action"])}
        data={Object.entries(ACTIONS).map(([value, a]) => ({ value, label: text(a.label) }))}
        value={step.action}
        onChange={changeAction}
        allowDeselect={false}
        readOnly={readOnly}
      />
      {kind && (
        <Select
          label={text(TARGET_COLLECTIONS[kind].title)}
          placeholder={text(["Выберите", "Choose"])}
          searchable
          data={options}
          value={step.target ? String(step.target.id) : null}
          onChange={(v) => set({ ...step, target: v ? { kind, id: Number(v) } : null })}
          nothingFoundMessage={text(["Ничего не найдено", "Nothing found"])}
          readOnly={readOnly}
          required
          description={options.length === 0 ? text(["Нет ни одного: создайте его в своём разделе", "None yet: create one in its section"]) : undefined}
        />
      )}
      {step.action === "classifier" &&
        CLASSIFIER_EXITS.map((e) => (
          <Select
            key={e.key}
            label={`${text(e.label)} → ${text(["шаг", "step"])}`}
            clearable
            data={stepOptions(levels, text(["Шаг", "Step"]))}
            value={step.params?.[e.key] !== undefined ? String(step.params[e.key]) : null}
            onChange={(v) => set({ ...step, params: { ...step.params, [e.key]: v ? Number(v) : "" } })}
            readOnly={readOnly}
          />
        ))}
      <NumberInput
        label={text(["Таймаут", "Timeout"])}
        description={def.timeout ? `${text(def.timeout)}; ${text(["0 — максимум установки", "0 = the installation maximum"])}` : text(["Для этого действия не используется", "Not used by this action"])}
        min={0}
        max={3600}
        suffix={text([" с", " s"])}
        value={step.timeout}
        onChange={(v) => set({ ...step, timeout: typeof v === "number" ? v : Number(v) || 0 })}
        readOnly={readOnly}
      />
    </Stack>
  );
}

function ConditionsTab({ step, set, levels, readOnly }: { step: Step; set: (s: Step) => void; levels: number[]; readOnly: boolean }) {
  const text = useText();
  const setCondition = (key: string, value: string | null) => {
    const conditions = { ...step.conditions };
    if (value) conditions[key] = Number(value);
    else delete conditions[key];
    set({ ...step, conditions });
  };
  return (
    <Stack>
      <Text>
        {text(["Уровень", "Level"])}: <b data-testid="step-level">{step.level}</b>
      </Text>
      <Text size="sm" c="dimmed">
        {text(["В остальных полях — номер шага, на который перейдёт вызов.", "The other fields name the step the call goes to next."])}
      </Text>
      {CONDITIONS.map((c) => (
        <Select
          key={c.key}
          label={text(c.label)}
          clearable
          placeholder={text(["— завершить вызов", "— end the call"])}
          data={stepOptions(levels, text(["Шаг", "Step"]))}
          value={step.conditions?.[c.key] !== undefined ? String(step.conditions[c.key]) : null}
          onChange={(v) => setCondition(c.key, v)}
          readOnly={readOnly}
        />
      ))}
    </Stack>
  );
}

function ScheduleTab({ step, set, readOnly }: { step: Step; set: (s: Step) => void; readOnly: boolean }) {
  const text = useText();
  const schedule = { days: [0, 1, 2, 3, 4, 5, 6], ranges: [] as Ranges, exceptions: [] as NonNullable<Step["schedule"]>["exceptions"], ...step.schedule };
  const exceptions = schedule.exceptions ?? [];
  const put = (patch: Partial<typeof schedule>) => set({ ...step, schedule: { ...schedule, ...patch } });
  const toggleDay = (d: number, on: boolean) => put({ days: on ? [...schedule.days!, d].sort() : schedule.days!.filter((x) => x !== d) });
  const setException = (i: number, patch: Partial<(typeof exceptions)[number]>) => put({ exceptions: exceptions.map((e, k) => (k === i ? { ...e, ...patch } : e)) });
  return (
    <Stack>
      <Text size="sm" fw={500}>
        {text(["Дни недели", "Days of the week"])}
      </Text>
      <Group>
        {WEEKDAYS.map((d, i) => (
          <Checkbox key={i} label={text(d)} checked={schedule.days!.includes(i)} onChange={(e) => toggleDay(i, e.currentTarget.checked)} disabled={readOnly} />
        ))}
      </Group>
      <Text size="sm" fw={500}>
        {text(["Время (нет интервалов — весь день)", "Time (no ranges = the whole day)"])}
      </Text>
      <RangesEditor ranges={(schedule.ranges ?? []) as Ranges} onChange={(ranges) => put({ ranges })} readOnly={readOnly} label={text(["Интервал", "Range"])} />
      <Text size="sm" fw={500}>
        {text(["Исключения (праздники, перенесённые рабочие дни)", "Exceptions (holidays, transferred working days)"])}
      </Text>
      {exceptions.map((e, i) => (
        <Stack key={i} gap={4} p="xs" style={{ border: "1px solid var(--mantine-color-gray-3)", borderRadius: 4 }}>
          <Group align="end">
            <TextInput type="date" label={text(["Дата", "Date"])} value={e.date} onChange={(ev) => setException(i, { date: ev.currentTarget.value })} readOnly={readOnly} />
            <Switch label={text(["Рабочий день", "Working day"])} checked={e.open ?? false} onChange={(ev) => setException(i, { open: ev.currentTarget.checked, ranges: ev.currentTarget.checked ? e.ranges : [] })} disabled={readOnly} />
            {!readOnly && (
              <ActionIcon variant="subtle" color="red" aria-label={`${text(["Убрать исключение", "Remove exception"])} ${i + 1}`} onClick={() => put({ exceptions: exceptions.filter((_, k) => k !== i) })}>
                <IconTrash size={16} />
              </ActionIcon>
            )}
          </Group>
          {e.open && <RangesEditor ranges={(e.ranges ?? []) as Ranges} onChange={(ranges) => setException(i, { ranges })} readOnly={readOnly} label={text(["Интервал", "Range"])} />}
        </Stack>
      ))}
      {!readOnly && (
        <Button
          variant="subtle"
          size="compact-sm"
          w="fit-content"
          leftSection={<IconPlus size={14} />}
          onClick={() => put({ exceptions: [...exceptions, { date: new Date().toISOString().slice(0, 10), open: false, ranges: [] }] })}
        >
          {text(["Добавить исключение", "Add an exception"])}
        </Button>
      )}
    </Stack>
  );
}

export function StepDialog({ step: initial, isNew, levels, targets, readOnly, onApply, onDelete, onCancel }: Props) {
  const text = useText();
  const [step, set] = useState<Step>(initial);
  const [tab, setTab] = useState<string | null>("action");
  const kind = ACTIONS[step.action].kind;
  const missingTarget = kind !== null && !step.target;
  const title = `${isNew ? text(["Новый шаг", "New step"]) : text(["Шаг", "Step"])} ${step.level}`;
  return (
    <Modal opened onClose={onCancel} title={title} size="lg">
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List mb="md">
          <Tabs.Tab value="action">{text(["Действие", "Action"])}</Tabs.Tab>
          <Tabs.Tab value="conditions">{text(["Условия", "Conditions"])}</Tabs.Tab>
          <Tabs.Tab value="schedule">{text(["Расписание", "Schedule"])}</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="action">
          <ActionTab step={step} set={set} targets={targets} levels={levels} readOnly={readOnly} />
        </Tabs.Panel>
        <Tabs.Panel value="conditions">
          <ConditionsTab step={step} set={set} levels={levels} readOnly={readOnly} />
        </Tabs.Panel>
        <Tabs.Panel value="schedule">
          <ScheduleTab step={step} set={set} readOnly={readOnly} />
        </Tabs.Panel>
      </Tabs>
      {missingTarget && !readOnly && (
        <Alert color="yellow" mt="md">
          {text(["Выберите, куда направить вызов: без этого диалплан не сохранится.", "Choose the target: the dialplan cannot be saved without it."])}
        </Alert>
      )}
      <Group justify="space-between" mt="lg">
        {!readOnly && !isNew ? (
          <Tooltip label={text(["Шаг 1 — вход в диалплан, его нельзя удалить", "Step 1 is the entry and cannot be deleted"])} disabled={step.level !== 1}>
            <Button color="red" variant="subtle" leftSection={<IconTrash size={16} />} disabled={step.level === 1} onClick={() => onDelete(step.level)}>
              {text(["Удалить шаг", "Delete step"])}
            </Button>
          </Tooltip>
        ) : (
          <span />
        )}
        <Group>
          <Button variant="default" onClick={onCancel}>
            {readOnly ? text(["Закрыть", "Close"]) : text(["Отмена", "Cancel"])}
          </Button>
          {!readOnly && <Button onClick={() => onApply(step)}>{text(["Готово", "Done"])}</Button>}
        </Group>
      </Group>
    </Modal>
  );
}
