// The dialplan as the editor holds it (DP-1…DP-3): the API's steps, the seed's words for
// actions and conditions, which target kind each action takes, the automatic layout and the
// arrows of the graph. Pure functions only: the page and the dialogs use them.
import type { Schemas } from "../api/client";

export type Step = Schemas["StepBody"];
export type Action = Schemas["Action"];
export type Condition = Schemas["Condition"];
export type TargetKind = Schemas["TargetKind"];
export type Issue = Schemas["IssueOut"];
export type Schedule = Schemas["ScheduleBody"];
export type Ranges = [string, string][];
export interface Point {
  x: number;
  y: number;
}
export type Positions = Record<number, Point>;
type Pair = readonly [string, string];

/** DP-2 in the seed's words ("SIP", "Заданный номер", "Service/FAXRECEIVER", …). */
export const ACTIONS: Record<Action, { label: Pair; kind: TargetKind | null; timeout: Pair | null }> = {
  ring_port: { label: ["SIP", "SIP"], kind: "port", timeout: ["Время вызова, с", "Ring time, s"] },
  ring_queue: {
    label: ["Очередь обработки вызовов", "Call queue"],
    kind: "queue",
    timeout: ["Максимальное ожидание, с", "Maximum wait, s"],
  },
  ring_forwarding: { label: ["Заданный номер", "Forwarding number"], kind: "forwarding_number", timeout: ["Время вызова, с", "Ring time, s"] },
  voice_menu: { label: ["Голосовое меню", "Voice menu"], kind: "voice_menu", timeout: null },
  play_message: { label: ["Звуковое сообщение", "Sound message"], kind: "media_file", timeout: null },
  voicemail: {
    label: ["Ящик голосовой почты", "Voicemail box"],
    kind: "voicemail_box",
    timeout: ["Максимальная длина сообщения, с", "Maximum message length, s"],
  },
  fax_receiver: { label: ["Service/FAXRECEIVER", "Service/FAXRECEIVER"], kind: null, timeout: null },
  classifier: { label: ["Классификатор вызовов", "Call classifier"], kind: "classifier", timeout: null },
  goto_number: { label: ["Внутренний номер", "Internal number"], kind: "internal_number", timeout: null },
  hangup: { label: ["Отбой", "Hang up"], kind: null, timeout: null },
};

/** DP-3, in the order the seed lists them (Переадресация is always taken first). */
export const CONDITIONS: readonly { key: Condition; label: Pair }[] = [
  { key: "forward", label: ["Переадресация", "Forward"] },
  { key: "after_answer", label: ["После ответа", "After answer"] },
  { key: "no_answer", label: ["Нет ответа", "No answer"] },
  { key: "busy", label: ["По занято", "Busy"] },
  { key: "no_route", label: ["Нет маршрута", "No route"] },
];

/** The classifier's own exits (params), drawn like conditions (DP-2). */
export const CLASSIFIER_EXITS: readonly { key: "found_step" | "not_found_step"; label: Pair }[] = [
  { key: "found_step", label: ["Найден в списке", "Found"] },
  { key: "not_found_step", label: ["Не найден", "Not found"] },
];

/** Collections the target picker lists, per target kind, and how a row is named. */
export const TARGET_COLLECTIONS: Record<TargetKind, { resource: string; label: (r: Record<string, unknown>) => string; title: Pair }> = {
  port: { resource: "ports", label: (r) => String(r.name), title: ["Порт", "Port"] },
  queue: { resource: "queues", label: (r) => String(r.name), title: ["Очередь", "Queue"] },
  forwarding_number: {
    resource: "forwarding-numbers",
    label: (r) => (r.name ? `${r.name} (${r.number})` : String(r.number)),
    title: ["Номер переадресации", "Forwarding number"],
  },
  voice_menu: { resource: "voice-menus", label: (r) => String(r.name), title: ["Голосовое меню", "Voice menu"] },
  media_file: { resource: "media-files", label: (r) => String(r.name), title: ["Медиафайл", "Media file"] },
  voicemail_box: { resource: "voicemail-boxes", label: (r) => String(r.name ?? r.id), title: ["Ящик голосовой почты", "Voicemail box"] },
  classifier: { resource: "classifiers", label: (r) => String(r.name), title: ["Классификатор", "Classifier"] },
  internal_number: {
    resource: "internal-numbers",
    label: (r) => (r.name ? `${r.number} — ${r.name}` : String(r.number)),
    title: ["Внутренний номер", "Internal number"],
  },
};

export const WEEKDAYS: readonly Pair[] = [
  ["Пн", "Mon"],
  ["Вт", "Tue"],
  ["Ср", "Wed"],
  ["Чт", "Thu"],
  ["Пт", "Fri"],
  ["Сб", "Sat"],
  ["Вс", "Sun"],
];

export function newStep(level: number): Step {
  return {
    level,
    action: "ring_port",
    target: null,
    timeout: 0,
    schedule: { days: [0, 1, 2, 3, 4, 5, 6], ranges: [], exceptions: [] },
    conditions: {},
    params: {},
    options: {},
  };
}

export function nextLevel(steps: Step[]): number {
  return steps.reduce((max, s) => Math.max(max, s.level), 0) + 1;
}

export interface Arrow {
  id: string;
  from: number;
  to: number;
  /** A DP-3 condition or a classifier exit. */
  key: string;
  label: Pair;
}

function paramStep(value: unknown): number | null {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : null;
}

/** Every transition of the plan: conditions and classifier exits (DP-3, DP-2). */
export function arrows(steps: Step[]): Arrow[] {
  const out: Arrow[] = [];
  for (const s of steps) {
    for (const c of CONDITIONS) {
      const to = s.conditions?.[c.key];
      if (to !== undefined && to !== null) out.push({ id: `${s.level}-${c.key}`, from: s.level, to, key: c.key, label: c.label });
    }
    if (s.action !== "classifier") continue;
    for (const e of CLASSIFIER_EXITS) {
      const to = paramStep(s.params?.[e.key]);
      if (to !== null) out.push({ id: `${s.level}-${e.key}`, from: s.level, to, key: e.key, label: e.label });
    }
  }
  return out;
}

const COLUMN_W = 280;
const ROW_H = 190;

/** Automatic layout by breadth-first depth from step 1: one row per depth, unreachable steps
 * on a last row. Used for steps that have no stored position. */
export function autoLayout(steps: Step[]): Positions {
  const levels = new Set(steps.map((s) => s.level));
  const next = new Map<number, number[]>();
  for (const a of arrows(steps)) if (levels.has(a.to)) next.set(a.from, [...(next.get(a.from) ?? []), a.to]);
  const depth = new Map<number, number>();
  const queue = levels.has(1) ? [1] : [];
  if (queue.length) depth.set(1, 0);
  while (queue.length) {
    const level = queue.shift()!;
    for (const to of next.get(level) ?? []) {
      if (depth.has(to)) continue;
      depth.set(to, depth.get(level)! + 1);
      queue.push(to);
    }
  }
  const last = Math.max(-1, ...depth.values()) + 1;
  const rows = new Map<number, number[]>();
  for (const s of [...steps].sort((a, b) => a.level - b.level)) {
    const row = depth.get(s.level) ?? last;
    rows.set(row, [...(rows.get(row) ?? []), s.level]);
  }
  const out: Positions = {};
  rows.forEach((members, row) => members.forEach((level, i) => (out[level] = { x: 40 + i * COLUMN_W, y: 40 + row * ROW_H })));
  return out;
}

/** Stored positions where there are any, the automatic layout for the rest. */
export function placeSteps(steps: Step[], stored: Positions): Positions {
  const auto = autoLayout(steps);
  return Object.fromEntries(steps.map((s) => [s.level, stored[s.level] ?? auto[s.level]]));
}

/** The version's `layout` JSON → positions; anything malformed is ignored (drawn anew). */
export function positionsFromLayout(layout: Record<string, unknown> | undefined): Positions {
  const raw = layout?.positions;
  if (!raw || typeof raw !== "object") return {};
  const out: Positions = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const p = value as Partial<Point> | null;
    if (p && typeof p.x === "number" && typeof p.y === "number" && Number(key) > 0) out[Number(key)] = { x: Math.round(p.x), y: Math.round(p.y) };
  }
  return out;
}

export function layoutFromPositions(steps: Step[], positions: Positions): Record<string, unknown> {
  const kept = Object.fromEntries(steps.filter((s) => positions[s.level]).map((s) => [String(s.level), positions[s.level]]));
  return { positions: kept };
}

function dayList(days: number[], lang: number): string {
  const sorted = [...new Set(days)].filter((d) => d >= 0 && d <= 6).sort();
  if (sorted.length === 7) return "";
  const contiguous = sorted.length > 2 && sorted.every((d, i) => i === 0 || d === sorted[i - 1] + 1);
  if (contiguous) return `${WEEKDAYS[sorted[0]][lang]}–${WEEKDAYS[sorted[sorted.length - 1]][lang]}`;
  return sorted.map((d) => WEEKDAYS[d][lang]).join(", ");
}

/** A one-line hint of a step's schedule for its box: "любые дни, любое время" by default. */
export function scheduleHint(schedule: Schedule | undefined, lang: "ru" | "en"): string {
  const i = lang === "en" ? 1 : 0;
  const days = schedule?.days ?? [0, 1, 2, 3, 4, 5, 6];
  const ranges = schedule?.ranges ?? [];
  const exceptions = schedule?.exceptions?.length ?? 0;
  if (days.length === 0 && !exceptions) return i ? "never open" : "никогда не открыт";
  const d = dayList(days, i);
  const r = ranges.map(([a, b]) => `${a}–${b}`).join(", ");
  const parts = [d || (i ? "any day" : "любые дни"), r || (i ? "any time" : "любое время")];
  if (exceptions) parts.push(i ? `${exceptions} exception(s)` : `исключений: ${exceptions}`);
  return parts.join(", ");
}

/** A copy of the step without empty conditions, ready for the API. */
export function cleanStep(step: Step): Step {
  const conditions = Object.fromEntries(Object.entries(step.conditions ?? {}).filter(([, v]) => v !== null && v !== undefined));
  const params = Object.fromEntries(Object.entries(step.params ?? {}).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  return { ...step, conditions, params };
}

/** Issues by step level; those without a level (e.g. "no step 1") under 0. */
export function issuesByLevel(issues: Issue[]): Map<number, Issue[]> {
  const out = new Map<number, Issue[]>();
  for (const issue of issues) {
    const key = issue.level ?? 0;
    out.set(key, [...(out.get(key) ?? []), issue]);
  }
  return out;
}

/** Issues from a 422 `dialplan_invalid` answer's details. */
export function issuesFromDetails(details: unknown[]): Issue[] {
  return details.flatMap((d) => {
    const x = d as Partial<Issue>;
    if (!x || typeof x.message !== "string") return [];
    return [{ severity: x.severity === "warning" ? "warning" : "error", code: String(x.code ?? ""), level: x.level ?? null, field: String(x.field ?? ""), message: x.message }];
  });
}
