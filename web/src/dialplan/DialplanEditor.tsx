// The graphical dialplan editor (DP-1…DP-7, seed figures 2–9): the graph, the step window,
// live DP-5 checks drawn on the boxes, Save (a new version, 409 when someone saved in between)
// and Close (asks before dropping changes), versions with rollback, and the test call panel.
import { Alert, Badge, Button, Grid, Group, Paper, Stack, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { modals } from "@mantine/modals";
import { notifications } from "@mantine/notifications";
import { IconDeviceFloppy, IconHistory, IconLayoutDistributeVertical, IconPhoneCall, IconX } from "@tabler/icons-react";
import { useQueryClient } from "@tanstack/react-query";
import { ReactFlowProvider } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, http, type Schemas } from "../api/client";
import { useText } from "../crud/text";
import { Graph, type Highlight } from "./Graph";
import {
  autoLayout,
  cleanStep,
  issuesFromDetails,
  layoutFromPositions,
  newStep,
  nextLevel,
  placeSteps,
  positionsFromLayout,
  type Issue,
  type Point,
  type Positions,
  type Step,
} from "./model";
import { PathList, SimulatorPanel, type Simulation } from "./Simulator";
import { StepDialog } from "./StepDialog";
import { useTargets } from "./targets";
import { VersionsDrawer, type DialplanRead } from "./Versions";

export interface Owner {
  field: "internal_number_id" | "external_number_id";
  id: number;
  number: string;
}

export interface Shown {
  /** The stored version on screen; null for a number without a dialplan yet. */
  version: number | null;
  steps: Step[];
  layout: Record<string, unknown>;
  warnings: Issue[];
}

interface Props {
  clientId: number;
  owner: Owner;
  plan: DialplanRead | null;
  shown: Shown;
  readOnly: boolean;
  /** The user's rights allow changing this dialplan (rollback). */
  canEdit: boolean;
  /** Why it is read-only (an old version, a call's path, no right to change). */
  readOnlyReason?: string;
  /** A recorded call's path (DP-7). */
  callPath?: { steps: number[]; title: string } | null;
  onSaved: (plan: DialplanRead) => void;
  onReload: () => void;
  onOpenVersion: (version: number | null) => void;
  onClose: () => void;
}

interface Dialog {
  step: Step;
  isNew: boolean;
}

function simHighlight(result: Simulation): Highlight {
  // The path on this graph ends where the call goes on to another number's dialplan.
  const own: Simulation["moves"] = [];
  for (const m of result.moves) {
    own.push(m);
    if (m.condition === "goto_number") break;
  }
  const steps = own.filter((m) => m.to_level !== null && m.condition !== "goto_number").map((m) => m.to_level as number);
  return { steps, moves: own.map((m) => ({ from: m.from_level, to: m.to_level, condition: m.condition })) };
}

function callHighlight(steps: number[]): Highlight {
  const moves = steps.slice(1).map((to, i) => ({ from: steps[i], to, condition: "" }));
  return { steps, moves };
}

export function DialplanEditor(props: Props) {
  const { clientId, owner, plan, shown, readOnly } = props;
  const text = useText();
  const queryClient = useQueryClient();
  const targets = useTargets(clientId);
  const [steps, setSteps] = useState<Step[]>(shown.steps);
  const [positions, setPositions] = useState<Positions>(() => placeSteps(shown.steps, positionsFromLayout(shown.layout)));
  const [dirty, setDirty] = useState(false);
  const [issues, setIssues] = useState<Issue[]>(shown.warnings);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [comment, setComment] = useState("");
  const [saving, setSaving] = useState(false);
  const [simOpen, setSimOpen] = useState(false);
  const [versionsOpen, setVersionsOpen] = useState(false);
  const [sim, setSim] = useState<Simulation | null>(null);
  const [debouncedSteps] = useDebouncedValue(steps, 400);

  // DP-5 as you draw: the server's own checks, dry run; errors and warnings go on the boxes.
  useEffect(() => {
    if (readOnly || !dirty) return;
    const controller = new AbortController();
    http<Schemas["CheckResult"]>("POST", `/clients/${clientId}/dialplans/validate`, { body: { steps: debouncedSteps.map(cleanStep) }, signal: controller.signal })
      .then((r) => setIssues(r.issues))
      .catch(() => undefined);
    return () => controller.abort();
  }, [debouncedSteps, clientId, readOnly, dirty]);

  const change = (next: Step[]) => {
    setSteps(next);
    setDirty(true);
    setSim(null);
  };

  const onMove = useCallback((level: number, to: Point) => {
    setPositions((p) => ({ ...p, [level]: { x: Math.round(to.x), y: Math.round(to.y) } }));
    setDirty(true);
  }, []);

  const onCreateAt = useCallback(
    (at: Point) => {
      const level = nextLevel(steps);
      setPositions((p) => ({ ...p, [level]: { x: Math.round(at.x - 20), y: Math.round(at.y - 20) } }));
      setDialog({ step: newStep(level), isNew: true });
    },
    [steps],
  );

  const onOpen = useCallback(
    (level: number) => {
      const step = steps.find((s) => s.level === level);
      if (step) setDialog({ step, isNew: false });
    },
    [steps],
  );

  const apply = (step: Step) => {
    const exists = steps.some((s) => s.level === step.level);
    change(exists ? steps.map((s) => (s.level === step.level ? step : s)) : [...steps, step].sort((a, b) => a.level - b.level));
    setDialog(null);
  };

  const remove = (level: number) => {
    if (level === 1) return; // DP-1: step 1 is the entry
    // Arrows into the deleted step are removed with it: they would point nowhere.
    const next = steps
      .filter((s) => s.level !== level)
      .map((s) => ({
        ...s,
        conditions: Object.fromEntries(Object.entries(s.conditions ?? {}).filter(([, to]) => to !== level)),
        params: Object.fromEntries(Object.entries(s.params ?? {}).filter(([k, v]) => !(k.endsWith("_step") && Number(v) === level))),
      }));
    change(next);
    setDialog(null);
  };

  const relayout = () => {
    setPositions(autoLayout(steps));
    setDirty(true);
  };

  const conflict = (err: ApiError) =>
    modals.open({
      title: text(["Диалплан изменён другим пользователем", "Someone else changed the dialplan"]),
      children: (
        <Stack>
          <Text size="sm">{err.message}</Text>
          <Text size="sm">
            {text([
              "Ваши изменения не сохранены и ничего не перезаписано. Загрузите текущую версию и внесите изменения снова.",
              "Your changes were not saved and nothing was overwritten. Load the current version and make your changes again.",
            ])}
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => modals.closeAll()}>
              {text(["Остаться", "Stay"])}
            </Button>
            <Button
              onClick={() => {
                modals.closeAll();
                props.onReload();
              }}
            >
              {text(["Загрузить текущую версию", "Load the current version"])}
            </Button>
          </Group>
        </Stack>
      ),
    });

  const save = async () => {
    setSaving(true);
    const body = { steps: steps.map(cleanStep), layout: layoutFromPositions(steps, positions), comment };
    try {
      const saved = plan
        ? await http<DialplanRead>("PUT", `/clients/${clientId}/dialplans/${plan.id}/steps`, { body: { ...body, base_version: plan.version } })
        : await http<DialplanRead>("POST", `/clients/${clientId}/dialplans`, { body: { ...body, name: `${text(["Номер", "Number"])} ${owner.number}`, [owner.field]: owner.id } });
      setDirty(false);
      setComment("");
      setIssues(saved.warnings);
      await queryClient.invalidateQueries({ queryKey: ["dialplan"] });
      notifications.show({ color: "green", message: `${text(["Сохранено: версия", "Saved: version"])} ${saved.version}` });
      props.onSaved(saved);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409 && err.field === "base_version") conflict(err);
      else if (err instanceof ApiError && err.code === "dialplan_invalid") setIssues(issuesFromDetails(err.details));
      if (!(err instanceof ApiError && err.status === 409 && err.field === "base_version"))
        notifications.show({ color: "red", title: text(["Диалплан не сохранён", "The dialplan was not saved"]), message: err instanceof Error ? err.message : String(err) });
    } finally {
      setSaving(false);
    }
  };

  const close = () => {
    if (!dirty) return props.onClose();
    modals.openConfirmModal({
      title: text(["Закрыть без сохранения?", "Close without saving?"]),
      children: <Text size="sm">{text(["Несохранённые изменения диалплана будут потеряны.", "Unsaved changes to the dialplan will be lost."])}</Text>,
      labels: { confirm: text(["Закрыть", "Close"]), cancel: text(["Отмена", "Cancel"]) },
      confirmProps: { color: "red" },
      onConfirm: props.onClose,
    });
  };

  const highlight = useMemo(() => (sim ? simHighlight(sim) : props.callPath ? callHighlight(props.callPath.steps) : null), [sim, props.callPath]);
  const general = issues.filter((i) => i.level === null || !steps.some((s) => s.level === i.level));
  const errors = issues.filter((i) => i.severity === "error").length;
  const levels = dialog ? [...new Set([...steps.map((s) => s.level), dialog.step.level])].sort((a, b) => a - b) : [];
  const canSimulate = plan !== null && shown.version !== null;

  return (
    <Stack gap="sm">
      <Group justify="space-between" wrap="wrap">
        <Group gap="xs">
          <Title order={2}>
            {text(["Диалплан номера", "Dialplan of number"])} {owner.number}
          </Title>
          {shown.version !== null && <Badge variant="light">{`${text(["версия", "version"])} ${shown.version}`}</Badge>}
          {dirty && <Badge color="yellow">{text(["не сохранён", "unsaved"])}</Badge>}
        </Group>
        <Group gap="xs">
          {plan && (
            <Button variant="default" leftSection={<IconHistory size={16} />} onClick={() => setVersionsOpen(true)}>
              {text(["Версии", "Versions"])}
            </Button>
          )}
          {canSimulate && (
            <Button variant={simOpen ? "filled" : "default"} leftSection={<IconPhoneCall size={16} />} onClick={() => setSimOpen((o) => !o)}>
              {text(["Тестовый звонок", "Test call"])}
            </Button>
          )}
          {!readOnly && (
            <Button variant="default" leftSection={<IconLayoutDistributeVertical size={16} />} onClick={relayout} disabled={steps.length === 0}>
              {text(["Расположить", "Arrange"])}
            </Button>
          )}
        </Group>
      </Group>
      {props.readOnlyReason && <Alert color="blue">{props.readOnlyReason}</Alert>}
      {props.callPath && (
        <Alert color="blue" title={props.callPath.title}>
          {text(["Шаги вызова", "The call's steps"])}: {props.callPath.steps.join(" → ") || "—"}
        </Alert>
      )}
      {!readOnly && steps.length === 0 && (
        <Alert color="gray">{text(["Щёлкните мышью на любом свободном месте, чтобы создать шаг диалплана.", "Click anywhere on free space to create a dialplan step."])}</Alert>
      )}
      {general.map((i) => (
        <Alert key={i.code + i.field} color={i.severity === "error" ? "red" : "yellow"} p="xs">
          {i.message}
        </Alert>
      ))}
      <Grid gutter="sm">
        <Grid.Col span={{ base: 12, md: simOpen ? 8 : 12 }}>
          <Paper withBorder h="68vh" data-testid="dialplan-graph">
            <ReactFlowProvider>
              <Graph
                steps={steps}
                positions={positions}
                issues={issues}
                targets={targets}
                highlight={highlight}
                readOnly={readOnly}
                onMove={onMove}
                onOpen={onOpen}
                onCreateAt={onCreateAt}
              />
            </ReactFlowProvider>
          </Paper>
        </Grid.Col>
        {simOpen && plan && (
          <Grid.Col span={{ base: 12, md: 4 }}>
            <Paper withBorder p="sm" mah="68vh" style={{ overflow: "auto" }}>
              <SimulatorPanel
                clientId={clientId}
                dialplanId={plan.id}
                version={shown.version}
                steps={steps}
                targets={targets}
                dirty={dirty}
                result={sim}
                onResult={setSim}
              />
            </Paper>
          </Grid.Col>
        )}
      </Grid>
      {!simOpen && sim && <PathList moves={sim.moves} />}
      <Group justify="space-between">
        <Group>
          {!readOnly && (
            <>
              <Button leftSection={<IconDeviceFloppy size={16} />} onClick={() => void save()} loading={saving} disabled={!dirty}>
                {text(["Сохранить", "Save"])}
              </Button>
              <TextInput aria-label={text(["Комментарий к версии", "Version comment"])} placeholder={text(["Комментарий к версии", "Version comment"])} value={comment} onChange={(e) => setComment(e.currentTarget.value)} w={260} />
            </>
          )}
          <Button variant="default" leftSection={<IconX size={16} />} onClick={close}>
            {text(["Закрыть", "Close"])}
          </Button>
        </Group>
        {errors > 0 && !readOnly && (
          <Text c="red" size="sm">
            {text(["Ошибок", "Errors"])}: {errors}
          </Text>
        )}
      </Group>
      {dialog && (
        <StepDialog
          key={`${dialog.step.level}-${dialog.isNew}`}
          step={dialog.step}
          isNew={dialog.isNew}
          levels={levels}
          targets={targets}
          readOnly={readOnly}
          onApply={apply}
          onDelete={remove}
          onCancel={() => setDialog(null)}
        />
      )}
      {plan && (
        <VersionsDrawer
          opened={versionsOpen}
          onClose={() => setVersionsOpen(false)}
          clientId={clientId}
          dialplanId={plan.id}
          currentVersion={plan.version}
          canRollback={props.canEdit}
          dirty={dirty}
          onOpenVersion={(n) => {
            setVersionsOpen(false);
            props.onOpenVersion(n === plan.version ? null : n);
          }}
          onRolledBack={(p) => {
            setVersionsOpen(false);
            props.onSaved(p);
          }}
        />
      )}
    </Stack>
  );
}
