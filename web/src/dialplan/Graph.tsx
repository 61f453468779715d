// The dialplan drawn as a graph (React Flow): a box per step, grey arrows labelled by condition,
// a click on free space asks for a new step at that point (seed figure 3), boxes can be moved.
import { Background, Controls, MarkerType, ReactFlow, useReactFlow, type Edge, type NodeChange } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useCallback, useMemo } from "react";
import { useTranslation } from "react-i18next";
import { useText } from "../crud/text";
import { ACTIONS, arrows, issuesByLevel, scheduleHint, type Issue, type Point, type Positions, type Step } from "./model";
import { StepNode, type StepNodeType } from "./StepNode";
import { targetName, type TargetOptions } from "./targets";

const NODE_TYPES = { step: StepNode };

/** A path to highlight: the steps entered in order and the moves between them (DP-6, DP-7). */
export interface Highlight {
  steps: number[];
  moves: { from: number | null; to: number | null; condition: string }[];
}

interface Props {
  steps: Step[];
  positions: Positions;
  issues: Issue[];
  targets: TargetOptions;
  highlight: Highlight | null;
  readOnly: boolean;
  onMove: (level: number, to: Point) => void;
  onOpen: (level: number) => void;
  onCreateAt: (at: Point) => void;
}

function orders(highlight: Highlight | null): Map<number, number[]> {
  const out = new Map<number, number[]>();
  highlight?.steps.forEach((level, i) => out.set(level, [...(out.get(level) ?? []), i + 1]));
  return out;
}

function taken(highlight: Highlight | null, from: number, to: number, key: string): boolean {
  const moves = highlight?.moves ?? [];
  return moves.some((m) => m.from === from && m.to === to && (m.condition === key || m.condition === ""));
}

export function Graph({ steps, positions, issues, targets, highlight, readOnly, onMove, onOpen, onCreateAt }: Props) {
  const text = useText();
  const { i18n } = useTranslation();
  const flow = useReactFlow();
  const byLevel = useMemo(() => issuesByLevel(issues), [issues]);
  const order = useMemo(() => orders(highlight), [highlight]);

  const nodes: StepNodeType[] = useMemo(
    () =>
      steps.map((step) => {
        const def = ACTIONS[step.action];
        const name = targetName(targets, step.target?.kind, step.target?.id);
        const timeout = def.timeout ? `${text(["Таймаут", "Timeout"])}: ${step.timeout ? `${step.timeout} ${text(["с", "s"])}` : text(["максимум", "maximum"])}` : null;
        return {
          id: String(step.level),
          type: "step" as const,
          position: positions[step.level] ?? { x: 0, y: 0 },
          draggable: !readOnly,
          data: {
            step,
            actionLabel: text(def.label),
            targetLabel: name,
            timeoutLabel: timeout,
            scheduleLabel: scheduleHint(step.schedule, i18n.language === "en" ? "en" : "ru"),
            levelLabel: text(["Шаг", "Step"]),
            issues: byLevel.get(step.level) ?? [],
            order: order.get(step.level) ?? [],
          },
        };
      }),
    [steps, positions, targets, byLevel, order, readOnly, text, i18n.language],
  );

  const edges: Edge[] = useMemo(() => {
    const levels = new Set(steps.map((s) => s.level));
    return arrows(steps)
      .filter((a) => levels.has(a.to))
      .map((a) => {
        const on = taken(highlight, a.from, a.to, a.key);
        const colour = on ? "var(--mantine-color-blue-6)" : "var(--mantine-color-gray-6)";
        return {
          id: a.id,
          source: String(a.from),
          target: String(a.to),
          label: text(a.label),
          className: `edge-${a.from}-${a.to}${on ? " edge-taken" : ""}`,
          animated: on,
          style: { stroke: colour, strokeWidth: on ? 3 : 1.5 },
          labelStyle: { fontSize: 12, fontWeight: on ? 700 : 400 },
          labelBgStyle: { fill: on ? "#e7f5ff" : "#fff" },
          markerEnd: { type: MarkerType.ArrowClosed, color: colour },
        };
      });
  }, [steps, highlight, text]);

  const onNodesChange = useCallback(
    (changes: NodeChange<StepNodeType>[]) => {
      for (const c of changes) if (c.type === "position" && c.position) onMove(Number(c.id), c.position);
    },
    [onMove],
  );

  const onPaneClick = useCallback(
    (event: React.MouseEvent) => {
      if (readOnly) return;
      onCreateAt(flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [flow, readOnly, onCreateAt],
  );

  return (
    <ReactFlow
      nodes={nodes}
      edges={edges}
      nodeTypes={NODE_TYPES}
      onNodesChange={onNodesChange}
      onNodeClick={(_, node) => onOpen(Number(node.id))}
      onPaneClick={onPaneClick}
      nodesConnectable={false}
      elementsSelectable
      zoomOnDoubleClick={false}
      fitView
      fitViewOptions={{ maxZoom: 1, padding: 0.2 }}
      minZoom={0.2}
      aria-label={text(["Граф диалплана", "Dialplan graph"])}
    >
      <Background gap={20} />
      <Controls showInteractive={false} />
    </ReactFlow>
  );
}
