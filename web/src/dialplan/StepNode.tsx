// One box of the dialplan graph (DP-1): the step's level, action and target, its timeout and
// a schedule hint; DP-5 errors outline it in red with the message, warnings in yellow; the
// path of a test call or of a recorded call (DP-6, DP-7) outlines it in blue with its order.
import { Badge, Group, Paper, Stack, Text } from "@mantine/core";
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import type { Issue, Step } from "./model";

export interface StepNodeData extends Record<string, unknown> {
  step: Step;
  actionLabel: string;
  targetLabel: string | null;
  timeoutLabel: string | null;
  scheduleLabel: string;
  levelLabel: string;
  issues: Issue[];
  /** 1-based positions of this step in the highlighted path (a step may be entered twice). */
  order: number[];
}

export type StepNodeType = Node<StepNodeData, "step">;

function border(data: StepNodeData): string {
  if (data.issues.some((i) => i.severity === "error")) return "2px solid var(--mantine-color-red-6)";
  if (data.order.length) return "3px solid var(--mantine-color-blue-6)";
  if (data.issues.length) return "2px solid var(--mantine-color-yellow-6)";
  return "1px solid var(--mantine-color-gray-5)";
}

function StepBox({ data, selected }: NodeProps<StepNodeType>) {
  const { step, issues, order } = data;
  const errors = issues.filter((i) => i.severity === "error");
  const warnings = issues.filter((i) => i.severity === "warning");
  return (
    <Paper
      data-testid={`step-${step.level}`}
      data-level={step.level}
      data-state={errors.length ? "error" : warnings.length ? "warning" : "ok"}
      data-path={order.length ? order.join(",") : undefined}
      shadow={selected ? "md" : "xs"}
      p="xs"
      w={230}
      style={{ border: border(data), background: order.length ? "var(--mantine-color-blue-0)" : "white", cursor: "pointer" }}
    >
      <Handle type="target" position={Position.Top} />
      <Stack gap={2}>
        <Group justify="space-between" wrap="nowrap" gap={4}>
          <Text fw={700} size="sm">
            {data.levelLabel} {step.level}
          </Text>
          {order.length > 0 && (
            <Badge size="sm" color="blue" circle={order.length === 1}>
              {order.join(", ")}
            </Badge>
          )}
        </Group>
        <Text size="sm" fw={500}>
          {data.actionLabel}
          {data.targetLabel ? ` ${data.targetLabel}` : ""}
        </Text>
        {data.timeoutLabel && (
          <Text size="xs" c="dimmed">
            {data.timeoutLabel}
          </Text>
        )}
        <Text size="xs" c="dimmed">
          {data.scheduleLabel}
        </Text>
        {errors.map((i) => (
          <Text key={i.code + i.field} size="xs" c="red.7" role="alert">
            {i.message}
          </Text>
        ))}
        {warnings.map((i) => (
          <Text key={i.code + i.field} size="xs" c="yellow.9">
            {i.message}
          </Text>
        ))}
      </Stack>
      <Handle type="source" position={Position.Bottom} />
    </Paper>
  );
}

export const StepNode = memo(StepBox);
